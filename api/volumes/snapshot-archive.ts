// A snapshot as a portable file (`pier volumes export` / `import`). Version 2 (written now): one
// header line `PIER-SNAPSHOT/2 {json}` naming the snapshot (its tree sha256, size, files), the
// payload (a tar of the snapshot's files) streamed straight from tar, then a fixed-length trailer
// line `PIER-END <bytes, 16 digits> <sha256>` with the payload's length and checksum: the data is
// read once and never staged (bench/volumes.ts compares it with tar). Version 1 (`PIER-SNAPSHOT/1`,
// payload length and sha256 in the header) is still imported. An import checks the payload's
// length and sha256 before anything is extracted, and the tree's sha256 after; a truncated or
// damaged file is E_SNAPSHOT_CORRUPT and changes nothing.
// The file is made and read where the snapshot's root is: writeArchive and readArchive are the
// local drivers' exportSnapshot and importSnapshot (on this machine, or in the node agent for a
// remote root), so every check of the format runs on one machine, beside the data.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Snapshot } from '../../db/schema/index.js';
import { newId, randomId } from '../ids.js';
import { PierError } from '../pier-error.js';
import { hostCommand } from './host-command.js';
import { hostSource, type HostStream } from './host-stream.js';
import { treeHash } from './tree-hash.js';
import type { ArchivedSnapshot, ImportedSnapshot, VolumeDriver } from './volume-driver.js';

export const ARCHIVE_MAGIC = 'PIER-SNAPSHOT/2';
const ARCHIVE_MAGIC_V1 = 'PIER-SNAPSHOT/1';
const TRAILER_MAGIC = 'PIER-END';
/** `PIER-END ` + 16 digits + space + 64 hex + newline. */
export const TRAILER_LENGTH = TRAILER_MAGIC.length + 1 + 16 + 1 + 64 + 1;
const MAX_HEADER = 64 * 1024;

export interface ArchiveHeader {
  snapshot: ArchivedSnapshot;
  /** Version 1 only: the payload's length and sha256 (version 2 has them in the trailer). */
  payload: { format: 'tar'; bytes?: number; sha256?: string };
}

/** What the header says of a snapshot row. */
export function archivedSnapshot(snap: Snapshot): ArchivedSnapshot {
  return { id: snap.id, volume: snap.volumeName, sha256: snap.sha256, bytes: snap.bytes, files: snap.files, createdAt: snap.createdAt.toISOString() };
}

/**
 * The export route's file: made by the driver of the snapshot's root, wherever that root is. Its
 * first bytes are awaited, so that a failure before them (a node agent that cannot be reached)
 * is the route's coded error rather than a 200 cut short; a failure after them cuts the stream.
 */
export async function exportSnapshot(driver: VolumeDriver, snap: Snapshot): Promise<{ stream: Readable }> {
  const file = driver.exportSnapshot(snap.id, archivedSnapshot(snap));
  file.done.catch(() => undefined); // told by the stream's error
  const { stream } = file;
  if (stream.readableLength === 0) {
    await new Promise<void>((resolve, reject) => {
      const settle = (err?: Error) => {
        stream.off('readable', settle);
        stream.off('error', settle);
        if (err) reject(err);
        else resolve();
      };
      stream.on('readable', settle);
      stream.on('error', settle);
    });
  }
  return { stream };
}

/** The import route's snapshot: read into a new snapshot of the root `root` (its driver); returns its row's fields. */
export async function importSnapshot(driver: VolumeDriver, root: string, body: Readable): Promise<Omit<Snapshot, 'createdAt' | 'appId' | 'expiresAt'>> {
  const id = newId('snap');
  const got = await driver.importSnapshot(id, body);
  return { id, volumeId: null, volumeName: got.volumeName, kind: 'imported', driver: driver.kind, root, consistency: 'imported', bytes: got.bytes, files: got.files, sha256: got.sha256 };
}

/**
 * A local snapshot folder as the file: header, tar's output as it comes (hashed on the way),
 * trailer. Its length is not known up front. A tar that fails ends the stream with an error and no
 * trailer, so the partial file can never be imported.
 */
export function writeArchive(dir: string, snapshot: ArchivedSnapshot): HostStream<Readable> {
  const header: ArchiveHeader = { snapshot, payload: { format: 'tar' } };
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  out.write(`${ARCHIVE_MAGIC} ${JSON.stringify(header)}\n`);
  const tar = hostSource('tar', ['-C', dir, '--sort=name', '--numeric-owner', '-cf', '-', '.']);
  const hash = createHash('sha256');
  let bytes = 0;
  tar.stream.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    if (!out.write(chunk)) {
      tar.stream.pause();
      out.once('drain', () => tar.stream.resume());
    }
  });
  // The reader went away: tar stops too.
  out.on('close', () => tar.abort());
  // tar's exit comes after its output's end: every byte is hashed by then.
  const done = tar.done.then(
    () => void out.end(trailer(bytes, hash.digest('hex'))),
    (err: unknown) => {
      out.destroy(err as Error);
      throw err;
    },
  );
  done.catch(() => undefined); // the caller awaits it, or reads the stream's error
  return { stream: out, done, abort: () => out.destroy(new PierError('E_VOLUME_DRIVER', `the export of ${dir} was aborted`, { status: 500 })) };
}

function trailer(bytes: number, sha256: string): string {
  return `${TRAILER_MAGIC} ${String(bytes).padStart(16, '0')} ${sha256}\n`;
}

/**
 * Reads a file made by writeArchive into the new snapshot `snapshotId` of a local driver: the
 * payload into a file beside a staging folder, checked, extracted there, its tree checked, adopted.
 */
export async function readArchive(driver: Pick<VolumeDriver, 'staging' | 'adopt' | 'discard'>, snapshotId: string, body: Readable): Promise<ImportedSnapshot> {
  const work = await driver.staging(`import-${randomId(8)}`);
  const tar = `${work}.tar`;
  try {
    const { header, version, rest } = await readHeader(body);
    const hash = createHash('sha256');
    let bytes = 0;
    // Version 2: the last TRAILER_LENGTH bytes are the trailer, held back from the payload.
    let held = Buffer.alloc(0);
    const holdBack = version === 2 ? TRAILER_LENGTH : 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        const pass = (data: Buffer) => {
          if (data.length === 0) return;
          hash.update(data);
          bytes += data.length;
          this.push(data);
        };
        if (!holdBack) pass(chunk);
        else if (chunk.length >= holdBack) {
          // Without copying the chunk: what was held goes first, the chunk's tail is held.
          pass(held);
          pass(chunk.subarray(0, chunk.length - holdBack));
          held = Buffer.from(chunk.subarray(chunk.length - holdBack));
        } else {
          const all = Buffer.concat([held, chunk]);
          pass(all.subarray(0, Math.max(0, all.length - holdBack)));
          held = Buffer.from(all.subarray(Math.max(0, all.length - holdBack)));
        }
        done();
      },
    });
    await pipeline(rest, count, createWriteStream(tar));
    const sha256 = hash.digest('hex');
    let expected: { bytes: number; sha256: string };
    if (version === 2) {
      const m = held.length === TRAILER_LENGTH ? new RegExp(`^${TRAILER_MAGIC} (\\d{16}) ([0-9a-f]{64})\\n$`).exec(held.toString('latin1')) : null;
      if (!m) throw corrupt('the snapshot file is truncated or damaged: it does not end with its checksum line');
      expected = { bytes: Number(m[1]), sha256: m[2] as string };
    } else {
      expected = { bytes: header.payload.bytes as number, sha256: header.payload.sha256 as string };
    }
    if (bytes !== expected.bytes || sha256 !== expected.sha256) {
      const what = bytes < expected.bytes ? `truncated: ${bytes} of ${expected.bytes} payload bytes` : `damaged: the payload's sha256 is ${sha256}, the file says ${expected.sha256}`;
      throw corrupt(`the snapshot file is ${what}`);
    }
    await hostCommand('tar', ['-C', work, '--numeric-owner', '-xf', tar]);
    const tree = await treeHash(work);
    if (tree.sha256 !== header.snapshot.sha256) throw corrupt(`the files in the snapshot file do not match its sha256 (${tree.sha256}, expected ${header.snapshot.sha256})`);
    await driver.adopt(work, snapshotId);
    return { volumeName: header.snapshot.volume, sha256: tree.sha256, bytes: tree.bytes, files: tree.files };
  } catch (err) {
    await driver.discard(work).catch(() => undefined);
    throw err;
  } finally {
    await rm(tar, { force: true });
  }
}

async function readHeader(body: Readable): Promise<{ header: ArchiveHeader; version: 1 | 2; rest: Readable }> {
  let buffered = Buffer.alloc(0);
  const iterator = body[Symbol.asyncIterator]();
  for (;;) {
    const newline = buffered.indexOf(0x0a);
    if (newline >= 0) {
      const line = buffered.subarray(0, newline).toString('utf8');
      const tail = buffered.subarray(newline + 1);
      const { header, version } = parseHeader(line);
      async function* rest(): AsyncGenerator<Buffer> {
        if (tail.length) yield tail;
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          yield next.value as Buffer;
        }
      }
      return { header, version, rest: Readable.from(rest()) };
    }
    if (buffered.length > MAX_HEADER) throw corrupt('it does not start with a Pier snapshot header');
    const next = await iterator.next();
    if (next.done) throw corrupt(buffered.length === 0 ? 'the file is empty' : 'the file ends inside its header (truncated)');
    buffered = Buffer.concat([buffered, next.value as Buffer]);
  }
}

function parseHeader(line: string): { header: ArchiveHeader; version: 1 | 2 } {
  const version = line.startsWith(`${ARCHIVE_MAGIC} `) ? 2 : line.startsWith(`${ARCHIVE_MAGIC_V1} `) ? 1 : null;
  if (!version) throw corrupt(`it does not start with "${ARCHIVE_MAGIC}": not a file made by pier volumes export`);
  try {
    const h = JSON.parse(line.slice(ARCHIVE_MAGIC.length + 1)) as ArchiveHeader;
    if (typeof h.snapshot?.sha256 !== 'string' || typeof h.snapshot.volume !== 'string') throw new Error('fields missing');
    if (version === 1 && (typeof h.payload?.bytes !== 'number' || typeof h.payload.sha256 !== 'string')) throw new Error('fields missing');
    return { header: h, version };
  } catch {
    throw corrupt('its header is not valid');
  }
}

function corrupt(message: string): PierError {
  return new PierError('E_SNAPSHOT_CORRUPT', `${message}; nothing was imported`, { status: 422, hint: 'export the snapshot again (pier volumes export SNAPSHOT -o FILE) and copy the whole file' });
}
