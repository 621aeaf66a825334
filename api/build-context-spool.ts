// A build context as it arrives (a tar stream in the request body) written to a private file,
// counted and hashed on the way: past the size cap it stops reading and is refused with
// E_BUILD_CONTEXT_TOO_LARGE (413); the engine then reads the whole file, so the build never waits
// on a slow or stalled client.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { randomId } from './ids.js';
import { PierError } from './pier-error.js';

export interface SpooledContext {
  file: string;
  bytes: number;
  /** sha256 of the tar as uploaded. */
  hash: string;
  remove(): Promise<void>;
}

export function contextTooLarge(limit: number, seen?: number): PierError {
  return new PierError('E_BUILD_CONTEXT_TOO_LARGE', `the build context is larger than the limit of ${formatMiB(limit)}${seen !== undefined ? ` (${formatMiB(seen)} or more)` : ''}`, {
    status: 413,
    hint: 'leave out what the image does not need (.dockerignore, or [build] ignore = ["node_modules", …]); the server operator sets the limit with --build-context-limit or PIER_BUILD_CONTEXT_LIMIT',
  });
}

export async function spoolContext(body: WebReadableStream<Uint8Array> | Readable, dir: string, limit: number): Promise<SpooledContext> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `context-${Date.now()}-${randomId(6)}.tar`);
  const remove = () => rm(file, { force: true });
  const hash = createHash('sha256');
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > limit) return done(contextTooLarge(limit, bytes));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const source = body instanceof Readable ? body : Readable.fromWeb(body);
  try {
    await pipeline(source, counter, createWriteStream(file, { mode: 0o600 }));
  } catch (err) {
    await remove();
    if (err instanceof PierError) throw err;
    throw new PierError('E_BAD_REQUEST', `the build context upload broke off: ${(err as Error).message}`, { status: 400, hint: 'send the context again', cause: err });
  }
  if (bytes === 0) {
    await remove();
    throw new PierError('E_BAD_REQUEST', 'the build context is empty', { status: 400, hint: 'send the context folder as a tar stream (pier deploy does)' });
  }
  return { file, bytes, hash: `sha256:${hash.digest('hex')}`, remove };
}

function formatMiB(n: number): string {
  return `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
}
