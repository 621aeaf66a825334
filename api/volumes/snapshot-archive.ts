// A snapshot as a portable file (`pier volumes export` / `import`). Version 2 (written now): one
// header line `PIER-SNAPSHOT/2 {json}` naming the snapshot (its tree sha256, size, files), the
// payload (a tar of the snapshot's files) streamed straight from tar, then a fixed-length trailer
// line `PIER-END <bytes, 16 digits> <sha256>` with the payload's length and checksum: the data is
// read once and never staged (bench/volumes.ts compares it with tar). Version 1 (`PIER-SNAPSHOT/1`,
// payload length and sha256 in the header) is still imported. An import checks the payload's
// length and sha256 before anything is extracted, and the tree's sha256 after; a truncated or
// damaged file is E_SNAPSHOT_CORRUPT and changes nothing.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Snapshot } from '../../db/schema/index.js';
import { newId, randomId } from '../ids.js';
import { PierError } from '../pier-error.js';
import { hostCommand } from './host-command.js';
import { treeHash } from './tree-hash.js';
import type { VolumeDriver } from './volume-driver.js';

export const ARCHIVE_MAGIC = 'PIER-SNAPSHOT/2';
const ARCHIVE_MAGIC_V1 = 'PIER-SNAPSHOT/1';
const TRAILER_MAGIC = 'PIER-END';
/** `PIER-END ` + 16 digits + space + 64 hex + newline. */
export const TRAILER_LENGTH = TRAILER_MAGIC.length + 1 + 16 + 1 + 64 + 1;
const MAX_HEADER = 64 * 1024;

export interface ArchiveHeader {
  snapshot: { id: string; volume: string; sha256: string; bytes: number; files: number; createdAt: string };
  /** Version 1 only: the payload's length and sha256 (version 2 has them in the trailer). */
  payload: { format: 'tar'; bytes?: number; sha256?: string };
}

/**
 * The file as a stream: header, tar's output as it comes (hashed on the way), trailer. Its length
 * is not known up front. A tar that fails ends the stream with an error and no trailer, so the
 * partial file can never be imported.
 */
export async function exportSnapshot(driver: VolumeDriver, snap: Snapshot): Promise<{ stream: Readable }> {
  const header: ArchiveHeader = {
    snapshot: { id: snap.id, volume: snap.volumeName, sha256: snap.sha256, bytes: snap.bytes, files: snap.files, createdAt: snap.createdAt.toISOString() },
    payload: { format: 'tar' },
  };
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  out.write(`${ARCHIVE_MAGIC} ${JSON.stringify(header)}\n`);
  const tar = spawn('tar', ['-C', driver.snapshotPath(snap.id), '--sort=name', '--numeric-owner', '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  tar.stderr.on('data', (b: Buffer) => void (stderr = (stderr + b.toString()).slice(-2000)));
  const hash = createHash('sha256');
  let bytes = 0;
  const exited = new Promise<number | null>((resolve) => {
    tar.on('error', (err) => {
      stderr += err.message;
      resolve(-1);
    });
    tar.on('close', (code) => resolve(code));
  });
  tar.stdout.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    if (!out.write(chunk)) {
      tar.stdout.pause();
      out.once('drain', () => tar.stdout.resume());
    }
  });
  out.on('close', () => {
    if (tar.exitCode === null) tar.kill();
  });
  void exited.then((code) => {
    if (code !== 0) {
      out.destroy(new PierError('E_VOLUME_DRIVER', `tar of snapshot ${snap.id} failed: ${stderr.trim() || `exit ${code}`}`, { status: 500, hint: 'see the server log; the snapshot was left as it was' }));
      return;
    }
    out.end(trailer(bytes, hash.digest('hex')));
  });
  return { stream: out };
}

function trailer(bytes: number, sha256: string): string {
  return `${TRAILER_MAGIC} ${String(bytes).padStart(16, '0')} ${sha256}\n`;
}

/** Reads a file made by exportSnapshot into a new snapshot (on the driver); returns its row's fields. */
export async function importSnapshot(driver: VolumeDriver, body: Readable): Promise<Omit<Snapshot, 'createdAt' | 'appId' | 'expiresAt'>> {
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
    const id = newId('snap');
    await driver.adopt(work, id);
    return { id, volumeId: null, volumeName: header.snapshot.volume, kind: 'imported', driver: driver.kind, root: 'default', consistency: 'imported', bytes: tree.bytes, files: tree.files, sha256: tree.sha256 };
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
