// The Runtime on a Docker engine through dockerode: images, containers and events here; logs and
// exec in docker-logs.ts / docker-exec.ts. Engine failures become PierErrors with stable codes.

import Docker from 'dockerode';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { PierError } from '../pier-error.js';
import { createEngineErrors, dockerMessage, isConnectionError, statusOf } from './docker-errors.js';
import { DOCKER_EVENT_TYPES, parseDockerEvent } from './docker-event.js';
import { createDockerExec } from './docker-exec.js';
import { createDockerLogs } from './docker-logs.js';
import { containerAddresses, containerEndpoints, createDockerNetworks, networkNotFound } from './docker-network.js';
import { readJsonLines } from './json-lines.js';
import { isAuthRefusal } from './docker-builder.js';
import { registryAuthError } from '../registry/registry-client.js';
import { connectTcp } from './tcp-connect.js';
import {
  LABELS,
  type ContainerInfo,
  type ContainerSpec,
  type ContainerState,
  type PullPolicy,
  type ResolvedImage,
  type Runtime,
  type RuntimeEvent,
  type VolumeSpec,
} from './runtime.js';

export interface DockerRuntimeOptions {
  /** Defaults to /var/run/docker.sock; DOCKER_HOST is deliberately not read here. */
  socketPath?: string;
  log: Logger;
  /** Credentials for pulls from Pier's registry (an external one with basic auth). */
  registryAuth?: { host: string; username: string; password: string } | undefined;
}

const DEFAULT_SOCKET = '/var/run/docker.sock';

// docker-modem follows HTTP redirects, resolving the Location against a URL that has no host on a
// unix socket: the engine's 301 for a malformed path (`/containers//exec`, an empty id) became a
// request to the host "containers" whose DNS error had no listener and ended the process. The
// engine's API never redirects a well-formed request, so a redirect is made an ordinary error.
const dockerRequire = createRequire(createRequire(import.meta.url).resolve('dockerode'));
(dockerRequire('docker-modem/lib/http.js') as { maxRedirects: number }).maxRedirects = 0;

export function createDockerRuntime(options: DockerRuntimeOptions): Runtime {
  const socketPath = options.socketPath ?? DEFAULT_SOCKET;
  const docker = new Docker({ socketPath });
  const log = options.log.child({ component: 'docker-runtime' });

  const errors = createEngineErrors(socketPath);
  const { unavailable, engineError } = errors;
  const { logs, streamLogs } = createDockerLogs(docker, errors);
  const { exec, execInteractive } = createDockerExec(docker, errors);
  const { ensureNetwork, connectNetwork, disconnectNetwork, removeNetwork, listNetworks } = createDockerNetworks(docker, errors);

  const imageNotFound = (reference: string, why: string, cause?: unknown): PierError =>
    new PierError('E_IMAGE_NOT_FOUND', `image ${reference} not found: ${why}`, {
      status: 422,
      hint: `build it on the engine (docker build -t ${reference} .) or push it to a registry the engine can reach (docker push ${reference})`,
      cause,
    });

  async function inspectImage(reference: string): Promise<Docker.ImageInspectInfo | null> {
    try {
      return await docker.getImage(reference).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw engineError(err, `inspect image ${reference}`);
    }
  }

  async function pullImage(reference: string): Promise<void> {
    log.info({ image: reference }, 'pulling image');
    try {
      const auth = options.registryAuth;
      const ours = auth !== undefined && reference.startsWith(`${auth.host}/`);
      const stream = (await (ours ? docker.pull(reference, { authconfig: { username: auth.username, password: auth.password, serveraddress: auth.host } }) : docker.pull(reference))) as Readable;
      // Pull failures after the 200 header arrive as {"error": …} documents in the progress stream.
      for await (const message of readJsonLines(stream)) {
        const error = (message as { error?: unknown }).error;
        if (typeof error === 'string') throw new Error(error);
      }
    } catch (err) {
      if (isConnectionError(err)) throw unavailable(err);
      const auth = options.registryAuth;
      if (auth && reference.startsWith(`${auth.host}/`) && isAuthRefusal(dockerMessage(err))) throw registryAuthError(auth.host, true);
      throw imageNotFound(reference, `pull failed: ${dockerMessage(err)}`, err);
    }
  }

  async function inspect(id: string): Promise<ContainerInfo | null> {
    try {
      return toContainerInfo(await docker.getContainer(id).inspect());
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw engineError(err, `inspect container ${id}`);
    }
  }

  async function remove(id: string): Promise<void> {
    try {
      await docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      const status = statusOf(err);
      // 409 here means a removal is already in progress, which is what the caller wants.
      if (status === 404 || status === 409) return;
      throw engineError(err, `remove container ${id}`);
    }
  }

  async function* events(signal: AbortSignal): AsyncGenerator<RuntimeEvent> {
    if (signal.aborted) return;
    let stream: Readable;
    try {
      stream = (await docker.getEvents({
        filters: { type: ['container'], label: [`${LABELS.managed}=true`], event: [...DOCKER_EVENT_TYPES] },
        abortSignal: signal,
      } as Docker.GetEventsOptions)) as Readable;
    } catch (err) {
      if (signal.aborted) return;
      throw engineError(err, 'events');
    }
    const onAbort = (): void => {
      stream.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      const lines = readJsonLines(stream, (line) => log.warn({ line }, 'unparseable docker event'));
      for await (const message of lines) {
        const event = parseDockerEvent(message);
        if (event !== null) yield event;
      }
    } catch (err) {
      if (signal.aborted) return;
      throw engineError(err, 'events');
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
    }
    // The engine closed the stream (restart, shutdown): say so rather than end as if aborted.
    if (!signal.aborted) throw unavailable(new Error('docker closed the event stream'));
  }

  async function create(spec: ContainerSpec): Promise<string> {
    let id: string;
    try {
      const container = await docker.createContainer({
        name: spec.name,
        Image: spec.image,
        ...(spec.cmd === undefined ? {} : { Cmd: spec.cmd }),
        Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        Labels: spec.labels,
        HostConfig: {
          // Nothing is published: the edge and the checks reach the container on this network.
          ...(spec.network === undefined ? {} : { NetworkMode: spec.network }),
          // Swap equal to memory: the limit is a hard one, so exceeding it is a visible OOM kill.
          ...(spec.memoryBytes === undefined ? {} : { Memory: spec.memoryBytes, MemorySwap: spec.memoryBytes }),
          ...(spec.mounts?.length ? { Mounts: spec.mounts.map((m) => ({ Type: 'volume' as const, Source: m.volume, Target: m.target, ...(m.noCopy ? { VolumeOptions: { NoCopy: true } as Docker.MountSettings['VolumeOptions'] } : {}) })) } : {}),
        },
        ...(spec.network === undefined ? {} : { NetworkingConfig: { EndpointsConfig: { [spec.network]: {} } } }),
      });
      id = container.id;
    } catch (err) {
      const status = statusOf(err);
      if (status === 409) {
        throw new PierError('E_CONTAINER_CONFLICT', `a container named ${spec.name} already exists`, {
          status: 409,
          hint: `it is left from an earlier attempt: remove it (docker rm -f ${spec.name}) and try again`,
          cause: err,
        });
      }
      if (status === 404 && spec.network !== undefined && /network/i.test(dockerMessage(err))) throw networkNotFound(spec.network, err);
      if (status === 404) throw imageNotFound(spec.image, 'it is not on the engine; resolve it first', err);
      throw engineError(err, `create container ${spec.name}`);
    }
    try {
      // Made, not started: its private network is there from its first instruction.
      for (const network of spec.alsoJoin ?? []) await connectNetwork(id, network);
    } catch (err) {
      await remove(id).catch((removeErr: unknown) => log.warn({ err: removeErr, container: id }, 'remove after failed join failed'));
      throw err;
    }
    return id;
  }

  function startFailed(name: string, err: unknown): PierError {
    return new PierError('E_CONTAINER_START', `container ${name} failed to start: ${dockerMessage(err)}`, {
      status: 422,
      hint: 'check the command and the image: the executable must exist in the image',
      cause: err,
    });
  }

  return {
    async ping() {
      try {
        await docker.ping();
      } catch (err) {
        throw unavailable(err);
      }
    },

    async resolveImage(reference: string, pull: PullPolicy): Promise<ResolvedImage> {
      if (pull === 'always') await pullImage(reference);
      let info = await inspectImage(reference);
      if (info === null && pull === 'missing') {
        await pullImage(reference);
        info = await inspectImage(reference);
      }
      if (info === null) throw imageNotFound(reference, 'it is not on the engine and the pull policy is "never"');
      const labels = info.Config?.Labels ?? {};
      return {
        reference,
        id: info.Id,
        repoDigest: pickRepoDigest(reference, info.RepoDigests ?? []),
        ...(Object.keys(labels).length ? { labels } : {}),
        ...(info.DockerVersion ? { builtBy: info.DockerVersion } : {}),
      };
    },

    ensureNetwork,
    connectNetwork,
    disconnectNetwork,
    removeNetwork,
    listNetworks,

    async connect(address, port, options) {
      return connectTcp(address, port, options.timeoutMs, options.allowHalfOpen);
    },

    async run(spec: ContainerSpec): Promise<string> {
      const id = await create(spec);
      try {
        await docker.getContainer(id).start();
      } catch (err) {
        if (isConnectionError(err)) throw unavailable(err);
        await remove(id).catch((removeErr: unknown) => log.warn({ err: removeErr, container: id }, 'remove after failed start failed'));
        // The engine checks the network at start, not at create.
        if (statusOf(err) === 404 && spec.network !== undefined && /network/i.test(dockerMessage(err))) throw networkNotFound(spec.network, err);
        throw startFailed(spec.name, err);
      }
      log.debug({ container: id, name: spec.name }, 'container started');
      return id;
    },

    create,

    async start(id: string): Promise<void> {
      try {
        await docker.getContainer(id).start();
      } catch (err) {
        if (isConnectionError(err)) throw unavailable(err);
        const status = statusOf(err);
        if (status === 304) return; // started already
        if (status === 404 && /no such container/i.test(dockerMessage(err))) throw new PierError('E_CONTAINER_NOT_FOUND', `container ${id} does not exist`, { status: 404, cause: err });
        throw startFailed(id, err);
      }
    },

    async stop(id: string, timeoutSeconds: number): Promise<void> {
      try {
        await docker.getContainer(id).stop({ t: timeoutSeconds });
      } catch (err) {
        const status = statusOf(err);
        if (status === 304 || status === 404) return;
        throw engineError(err, `stop container ${id}`);
      }
    },

    remove,
    inspect,

    async list(labels: Record<string, string>): Promise<ContainerInfo[]> {
      let summaries: Docker.ContainerInfo[];
      try {
        summaries = await docker.listContainers({
          all: true,
          filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
        });
      } catch (err) {
        throw engineError(err, 'list containers');
      }
      // Inspect, not the summary: only inspect has exit code, OOM, error and times. A container
      // removed in between is simply no longer there.
      const infos = await Promise.all(summaries.map((s) => inspect(s.Id)));
      return infos.filter((info): info is ContainerInfo => info !== null);
    },

    async ensureVolume(spec: VolumeSpec): Promise<void> {
      try {
        const existing = await docker
          .getVolume(spec.name)
          .inspect()
          .catch((err: unknown) => {
            if (statusOf(err) === 404) return null;
            throw err;
          });
        if (existing && (existing.Options as Record<string, string> | null)?.device === spec.device) return;
        if (existing) await docker.getVolume(spec.name).remove();
        await docker.createVolume({ Name: spec.name, Driver: 'local', DriverOpts: { type: 'none', o: 'bind', device: spec.device }, Labels: spec.labels });
      } catch (err) {
        throw engineError(err, `create volume ${spec.name}`);
      }
    },

    async removeVolume(name: string): Promise<void> {
      const removeOnce = () => docker.getVolume(name).remove();
      try {
        await removeOnce();
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return;
        if (status !== 409) throw engineError(err, `remove volume ${name}`);
        // Docker refuses while any container refers to it, a stopped one too: a running one is a
        // real conflict; stopped ones (kept for their logs) go with the volume.
        const users = await docker.listContainers({ all: true, filters: { volume: [name] } }).catch((listErr: unknown) => {
          throw engineError(listErr, `list containers of volume ${name}`);
        });
        const running = users.filter((u) => u.State === 'running' || u.State === 'paused' || u.State === 'restarting');
        if (running.length) {
          throw new PierError('E_VOLUME_ATTACHED', `the Docker volume ${name} is in use by running container ${running.map((u) => u.Names[0]?.replace(/^\//, '') ?? u.Id).join(', ')}`, {
            status: 409,
            hint: 'stop the instance that uses it first',
            cause: err,
          });
        }
        for (const u of users) await remove(u.Id);
        try {
          await removeOnce();
        } catch (again) {
          if (statusOf(again) !== 404) throw engineError(again, `remove volume ${name}`);
        }
      }
    },

    async pause(id: string): Promise<void> {
      try {
        await docker.getContainer(id).pause();
      } catch (err) {
        const status = statusOf(err);
        if (status === 404 || status === 409) {
          throw new PierError('E_CONTAINER_NOT_RUNNING', `container ${id} is not running: ${dockerMessage(err)}`, { status: 409, cause: err });
        }
        throw engineError(err, `pause container ${id}`);
      }
    },

    async unpause(id: string): Promise<void> {
      try {
        await docker.getContainer(id).unpause();
      } catch (err) {
        const status = statusOf(err);
        if (status === 404 || status === 409 || status === 500) {
          // Not paused (Docker answers 500 "is not paused" on 20.10): nothing to thaw.
          if (/not paused|no such container/i.test(dockerMessage(err))) return;
        }
        throw engineError(err, `unpause container ${id}`);
      }
    },

    logs,
    streamLogs,
    exec,
    execInteractive,
    events,
  };
}

function toContainerInfo(info: Docker.ContainerInspectInfo): ContainerInfo {
  const state = info.State.Status as ContainerState;
  const neverRan = state === 'created' && info.State.ExitCode === 0 && !info.State.Error;
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    labels: info.Config.Labels ?? {},
    state,
    // A running container's ExitCode is a stale 0, not a result.
    exitCode: state === 'running' || state === 'paused' || neverRan ? null : info.State.ExitCode,
    oomKilled: info.State.OOMKilled,
    error: info.State.Error ? info.State.Error : null,
    startedAt: dockerTime(info.State.StartedAt),
    finishedAt: dockerTime(info.State.FinishedAt),
    networks: state === 'running' || state === 'paused' ? containerAddresses(info.NetworkSettings) : {},
    endpoints: state === 'running' || state === 'paused' ? containerEndpoints(info.NetworkSettings) : {},
  };
}

/** Docker writes "0001-01-01T00:00:00Z" for a time that has not happened. */
function dockerTime(value: string | undefined): Date | null {
  if (!value || value.startsWith('0001-01-01')) return null;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? null : time;
}

/** Prefer the digest in the reference's own repository when an image was pushed to several. */
function pickRepoDigest(reference: string, digests: string[]): string | null {
  const at = reference.indexOf('@');
  const lastColon = reference.lastIndexOf(':');
  const repo = at >= 0 ? reference.slice(0, at) : lastColon > reference.lastIndexOf('/') ? reference.slice(0, lastColon) : reference;
  return digests.find((d) => d.startsWith(`${repo}@`)) ?? digests[0] ?? null;
}
