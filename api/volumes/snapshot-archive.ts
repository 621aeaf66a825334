// A snapshot as a portable file (`pier volumes export` / `import`): one header line
// `PIER-SNAPSHOT/1 {json}` naming the snapshot (its tree sha256, size, files) and the payload
// (length and sha256), then the payload, a tar of the snapshot's files. An import checks the
// payload's length and sha256 before anything is extracted, and the tree's sha256 after; a
// truncated or damaged file is E_SNAPSHOT_CORRUPT and changes nothing.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Snapshot } from '../../db/schema/index.js';
import { newId, randomId } from '../ids.js';
import { PierError } from '../pier-error.js';
import { hostCommand } from './host-command.js';
import { treeHash } from './tree-hash.js';
import type { VolumeDriver } from './volume-driver.js';

export const ARCHIVE_MAGIC = 'PIER-SNAPSHOT/1';
const MAX_HEADER = 64 * 1024;

export interface ArchiveHeader {
  snapshot: { id: string; volume: string; sha256: string; bytes: number; files: number; createdAt: string };
  payload: { format: 'tar'; bytes: number; sha256: string };
}

/** The file as a stream; the payload is made (and hashed) first in the root's staging folder. */
export async function exportSnapshot(driver: VolumeDriver, snap: Snapshot): Promise<{ stream: Readable; bytes: number }> {
  const dir = await driver.staging(`export-${randomId(8)}`);
  const tar = join(dir, 'payload.tar');
  try {
    await hostCommand('tar', ['-C', driver.snapshotPath(snap.id), '--sort=name', '--numeric-owner', '-cf', tar, '.']);
    const payload = await fileHash(tar);
    const header: ArchiveHeader = {
      snapshot: { id: snap.id, volume: snap.volumeName, sha256: snap.sha256, bytes: snap.bytes, files: snap.files, createdAt: snap.createdAt.toISOString() },
      payload: { format: 'tar', bytes: payload.bytes, sha256: payload.sha256 },
    };
    const line = Buffer.from(`${ARCHIVE_MAGIC} ${JSON.stringify(header)}\n`);
    const out = new PassThrough();
    out.write(line);
    const cleanup = () => void driver.discard(dir).catch(() => undefined);
    createReadStream(tar)
      .on('error', (err) => out.destroy(err))
      .on('close', cleanup)
      .pipe(out);
    return { stream: out, bytes: line.length + payload.bytes };
  } catch (err) {
    await driver.discard(dir);
    throw err;
  }
}

/** Reads a file made by exportSnapshot into a new snapshot (on the driver); returns its row's fields. */
export async function importSnapshot(driver: VolumeDriver, body: Readable): Promise<Omit<Snapshot, 'createdAt' | 'appId' | 'expiresAt'>> {
  const work = await driver.staging(`import-${randomId(8)}`);
  const tar = `${work}.tar`;
  try {
    const { header, rest } = await readHeader(body);
    const hash = createHash('sha256');
    let bytes = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(rest, count, createWriteStream(tar));
    const sha256 = hash.digest('hex');
    if (bytes !== header.payload.bytes || sha256 !== header.payload.sha256) {
      const what = bytes < header.payload.bytes ? `truncated: ${bytes} of ${header.payload.bytes} payload bytes` : `damaged: the payload's sha256 is ${sha256}, the header says ${header.payload.sha256}`;
      throw corrupt(`the snapshot file is ${what}`);
    }
    await hostCommand('tar', ['-C', work, '--numeric-owner', '-xf', tar]);
    const tree = await treeHash(work);
    if (tree.sha256 !== header.snapshot.sha256) throw corrupt(`the files in the snapshot file do not match its sha256 (${tree.sha256}, expected ${header.snapshot.sha256})`);
    const id = newId('snap');
    await driver.adopt(work, id);
    return { id, volumeId: null, volumeName: header.snapshot.volume, kind: 'imported', driver: driver.kind, consistency: 'imported', bytes: tree.bytes, files: tree.files, sha256: tree.sha256 };
  } catch (err) {
    await driver.discard(work).catch(() => undefined);
    throw err;
  } finally {
    await rm(tar, { force: true });
  }
}

async function readHeader(body: Readable): Promise<{ header: ArchiveHeader; rest: Readable }> {
  let buffered = Buffer.alloc(0);
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    const newline = buffered.indexOf(0x0a);
    if (newline >= 0) {
      const line = buffered.subarray(0, newline).toString('utf8');
      const tail = buffered.subarray(newline + 1);
      const header = parseHeader(line);
      async function* rest(): AsyncGenerator<Buffer> {
        if (tail.length) yield tail;
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          yield next.value as Buffer;
        }
      }
      return { header, rest: Readable.from(rest()) };
    }
    if (buffered.length > MAX_HEADER) throw corrupt('it does not start with a Pier snapshot header');
    const next = await iterator.next();
    if (next.done) throw corrupt(buffered.length === 0 ? 'the file is empty' : 'the file ends inside its header (truncated)');
    buffered = Buffer.concat([buffered, next.value as Buffer]);
  }
}

function parseHeader(line: string): ArchiveHeader {
  if (!line.startsWith(`${ARCHIVE_MAGIC} `)) throw corrupt(`it does not start with "${ARCHIVE_MAGIC}": not a file made by pier volumes export`);
  try {
    const h = JSON.parse(line.slice(ARCHIVE_MAGIC.length + 1)) as ArchiveHeader;
    if (typeof h.payload?.bytes !== 'number' || typeof h.payload.sha256 !== 'string' || typeof h.snapshot?.sha256 !== 'string' || typeof h.snapshot.volume !== 'string') throw new Error('fields missing');
    return h;
  } catch {
    throw corrupt('its header is not valid');
  }
}

function corrupt(message: string): PierError {
  return new PierError('E_SNAPSHOT_CORRUPT', `${message}; nothing was imported`, { status: 422, hint: 'export the snapshot again (pier volumes export SNAPSHOT -o FILE) and copy the whole file' });
}

async function fileHash(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), bytes: (await stat(path)).size };
}
