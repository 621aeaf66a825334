// Packing a build context: the folder as a tar stream, leaving out what its .dockerignore and
// the manifest's [build] ignore name (the Dockerfile and .dockerignore always go, as with
// `docker build`), counting the bytes as they leave.
import { statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import tar from 'tar-fs';
import { CliError } from './cli-error.js';
import { createDockerIgnore, parseDockerIgnore } from './docker-ignore.js';
import { EXIT } from './exit-codes.js';

export interface PackedContext {
  stream: Readable;
  /** Bytes read from the stream so far. */
  bytes(): number;
}

export async function packContext(dir: string, options: { dockerfile: string; ignore: readonly string[] }): Promise<PackedContext> {
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) {
    throw new CliError('E_BUILD_CONTEXT_MISSING', `the build context ${dir} is not a folder`, {
      hint: '[build] context is relative to the folder that holds the manifest file; fix it or create the folder',
      exitCode: EXIT.usage,
    });
  }
  const fromFile = await readFile(`${dir}/.dockerignore`, 'utf8').then((t) => t.split(/\r?\n/), () => []);
  const rules = parseDockerIgnore([...fromFile, ...options.ignore]);
  const ignore = createDockerIgnore(rules);
  // With an exception ("!keep/this"), a left-out folder may still hold files that go: walk it.
  const walkIgnored = rules.some((r) => r.negate);
  const always = new Set([options.dockerfile, '.dockerignore']);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const packed = tar.pack(dir, {
    ignore(name) {
      const path = relative(dir, name).split(sep).join('/');
      if (path === '' || always.has(path) || !ignore.ignores(path)) return false;
      // The folder that holds the Dockerfile is walked even when it is left out.
      if ([...always].some((a) => a.startsWith(`${path}/`))) return false;
      return !(walkIgnored && statSync(name).isDirectory());
    },
    // Owners on the client's machine mean nothing in an image.
    map(header) {
      header.uid = 0;
      header.gid = 0;
      return header;
    },
  }) as unknown as Readable;
  packed.on('error', (err) => counter.destroy(err));
  return { stream: packed.pipe(counter), bytes: () => bytes };
}
