// ImageBuilder on a Docker engine (POST /build, POST /images/{name}/push, through dockerode).
// Docker answers a missing Dockerfile or a syntax error with HTTP 500 before the build starts,
// and a failing step as an {"error"} document in the output stream: each becomes its own code.
import Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { PierError } from '../pier-error.js';
import { createEngineErrors, dockerMessage, isConnectionError } from './docker-errors.js';
import { BUILD_ERROR_LINES, type BuildFailure, type BuildOptions, type ImageBuilder } from './image-builder.js';
import { readJsonLines } from './json-lines.js';
import { registryAuthError } from '../registry/registry-client.js';

/** What the engine says when a registry refuses (or wants) credentials. */
export function isAuthRefusal(message: string): boolean {
  return /unauthorized|authentication required|no basic auth credentials|denied: requested access/i.test(message);
}

export interface DockerBuilderOptions {
  socketPath: string;
}

interface BuildMessage {
  stream?: string;
  status?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string };
}

export function createDockerBuilder(options: DockerBuilderOptions): ImageBuilder {
  const docker = new Docker({ socketPath: options.socketPath });
  const { unavailable } = createEngineErrors(options.socketPath);

  return {
    async build(context, o, onLine) {
      let stream: Readable;
      try {
        stream = (await docker.buildImage(context, {
          t: o.tag,
          dockerfile: o.dockerfile,
          ...(o.target ? { target: o.target } : {}),
          buildargs: o.args,
          labels: o.labels,
          rm: true,
          forcerm: true,
        })) as Readable;
      } catch (err) {
        if (isConnectionError(err)) throw unavailable(err);
        throw refused(dockerMessage(err), o, err);
      }
      const lines = createLineSplitter(onLine);
      let imageId: string | null = null;
      try {
        for await (const raw of readJsonLines(stream)) {
          const m = raw as BuildMessage;
          if (typeof m.stream === 'string') lines.push(m.stream);
          if (typeof m.aux?.ID === 'string') imageId = m.aux.ID;
          if (typeof m.error === 'string') {
            lines.flush();
            throw failed(m.errorDetail?.message ?? m.error, lines.failure());
          }
        }
      } catch (err) {
        if (err instanceof PierError) throw err;
        if (isConnectionError(err)) throw unavailable(err);
        throw failed(`the build stream broke: ${dockerMessage(err)}`, lines.failure());
      }
      lines.flush();
      if (!imageId) throw failed('the engine ended the build without an image', lines.failure());
      return { imageId };
    },

    async push(tag, onLine, credentials) {
      let digest: string | null = null;
      const host = tag.split('/')[0] as string;
      try {
        // The engine wants an X-Registry-Auth header even for a registry without credentials.
        const authconfig = credentials ? { username: credentials.username, password: credentials.password, serveraddress: host } : {};
        const stream = (await docker.getImage(tag).push({ authconfig } as Docker.ImagePushOptions)) as Readable;
        for await (const raw of readJsonLines(stream)) {
          const m = raw as BuildMessage;
          if (typeof m.error === 'string') throw new Error(m.errorDetail?.message ?? m.error);
          if (typeof m.aux?.Digest === 'string') digest = m.aux.Digest;
          // Per-layer progress bars are noise in a build log; the outcome lines are not.
          if (typeof m.status === 'string' && /digest:|Pushed|already exists/.test(m.status)) onLine(m.id && !m.status.startsWith(m.id) ? `${m.id}: ${m.status}` : m.status);
        }
      } catch (err) {
        if (isConnectionError(err)) throw unavailable(err);
        if (isAuthRefusal(dockerMessage(err))) throw registryAuthError(host, Boolean(credentials));
        throw new PierError('E_PUSH_FAILED', `pushing ${tag} failed: ${dockerMessage(err)}`, {
          status: 502,
          hint: 'check that the registry serves (`pier describe` / the server log) and that the engine may push to it',
          cause: err,
        });
      }
      if (!digest) throw new PierError('E_PUSH_FAILED', `pushing ${tag} ended without a digest`, { status: 502, hint: 'retry the deploy' });
      return { digest };
    },
  };
}

/** A build the engine refused before it started: a missing Dockerfile or one it cannot parse. */
function refused(message: string, o: BuildOptions, cause: unknown): PierError {
  if (/Cannot locate specified Dockerfile|no such file or directory.*Dockerfile/i.test(message)) {
    return new PierError('E_BUILD_DOCKERFILE_MISSING', `there is no ${o.dockerfile} in the build context`, {
      status: 422,
      hint: `add ${o.dockerfile} to the context folder, set [build] dockerfile to its path inside the context, or check that .dockerignore and [build] ignore do not leave it out`,
      cause,
    });
  }
  const parse = /dockerfile parse error line (\d+): (.*)/i.exec(message);
  if (parse || /unknown instruction|Dockerfile/i.test(message)) {
    return new PierError('E_BUILD_DOCKERFILE_INVALID', `${o.dockerfile}${parse ? `:${parse[1]}` : ''}: ${parse ? parse[2] : message}`, {
      status: 422,
      hint: 'fix that line of the Dockerfile (https://docs.docker.com/reference/dockerfile/)',
      details: { dockerfile: o.dockerfile, line: parse ? Number(parse[1]) : null },
      cause,
    });
  }
  return new PierError('E_BUILD_FAILED', `the engine refused the build: ${message}`, { status: 422, hint: 'fix the Dockerfile or the [build] settings', details: { step: null, lastLines: [] }, cause });
}

/** A build that stopped at a step: a base image the engine cannot get is its own case. */
function failed(message: string, failure: BuildFailure): PierError {
  const fromStep = failure.step !== null && /^Step \d+\/\d+ : FROM /i.test(failure.step);
  if (fromStep) {
    const image = (failure.step as string).replace(/^Step \d+\/\d+ : FROM\s+/i, '').split(/\s+/)[0] ?? '';
    return new PierError('E_BUILD_BASE_IMAGE_NOT_FOUND', `the base image ${image} is not on the engine and could not be pulled: ${message}`, {
      status: 422,
      hint: `make ${image} available to the engine (docker load, docker build -t ${image} …, or push it to a registry the engine reaches), or start FROM an image it has`,
      details: failure,
    });
  }
  const where = failure.step ? ` at ${failure.step}` : '';
  const tail = failure.lastLines.length ? `\n  ${failure.lastLines.slice(-5).join('\n  ')}` : '';
  return new PierError('E_BUILD_FAILED', `the build failed${where}: ${message}${tail}`, {
    status: 422,
    hint: 'fix the failing step (its output is above) and deploy again; the running release is unchanged',
    details: failure,
  });
}

/** Docker sends lines in pieces ("Step 1/2 : FROM x", then "\n"): whole lines out, the failing step kept. */
function createLineSplitter(onLine: (line: string) => void) {
  let pending = '';
  let step: string | null = null;
  const last: string[] = [];
  const emit = (line: string): void => {
    const text = line.replace(/\r$/, '');
    if (/^Step \d+\/\d+ : /.test(text)) {
      step = text;
      last.length = 0;
    }
    // The builder's own bookkeeping says nothing about why a step failed.
    if (!/^ ---> |^Removing intermediate container /.test(text)) {
      last.push(text);
      if (last.length > BUILD_ERROR_LINES) last.shift();
    }
    onLine(text);
  };
  return {
    push(chunk: string): void {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        emit(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    },
    flush(): void {
      if (pending !== '') emit(pending);
      pending = '';
    },
    failure: (): BuildFailure => ({ step, lastLines: [...last] }),
  };
}
