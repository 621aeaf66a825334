// Sends one snapshot from a root's driver to another's as a byte stream (btrfs send | receive, or
// a tar for `dir`), counting the bytes. It is a stream on purpose: a move between nodes will carry
// the same bytes over the network instead of a local pipe. `truncateAt` cuts the stream short
// (fault injection for the move's proofs: the receiver must fail, and the source stay whole).
// Between roots of different drivers (btrfs and dir) neither's own stream is understood by the
// other: the snapshot goes as the portable file (snapshot-archive.ts), made by the source's driver
// and read by the target's, whole every time (transferArchive).
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isPierError, PierError } from '../pier-error.js';
import type { TreeHash } from './tree-hash.js';
import type { ImportedSnapshot, VolumeDriver } from './volume-driver.js';

export interface TransferOptions {
  /** Passes only this many bytes on (a truncated stream), then drops the rest. */
  truncateAt?: number | undefined;
}

/** Returns the bytes sent; rejects (E_VOLUME_DRIVER) when either end fails. */
export async function transferSnapshot(from: VolumeDriver, to: VolumeDriver, snapshotId: string, parentId: string | null, options: TransferOptions = {}): Promise<number> {
  const { counter, bytes } = byteCounter(options.truncateAt);
  const source = from.send(snapshotId, parentId);
  const sink = to.receive(snapshotId);
  const [piped, sent, received] = await Promise.allSettled([pipeline(source.stream, counter, sink.stream), source.done, sink.done]);
  // The receiver's own words first: a broken pipe at the sender is only its echo.
  for (const r of [received, sent]) if (r.status === 'rejected') throw r.reason;
  // Both tools exited 0: the receiver read the stream to its end marker and kept it. It may exit
  // before the pipe's own end reached it (tar stops at the end-of-archive blocks), which the
  // pipeline reports as a premature close: that is not a failure of the transfer.
  if (piped.status === 'rejected' && !receiverLeftEarly(piped.reason)) throw piped.reason;
  return bytes();
}

function receiverLeftEarly(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'EPIPE';
}

export interface ArchiveTransfer {
  bytes: number;
  /** The source snapshot's tree, taken before it was sent (the file's header carries it). */
  sent: TreeHash;
  /** The tree the target found after extracting it (its import refuses one that differs). */
  got: ImportedSnapshot;
}

/**
 * Sends a snapshot of `from` to `to` as the portable file: the source's tree hash goes in the
 * header, the target's import checks the payload's length and checksum, extracts it into its own
 * kind of snapshot of the same id and checks the tree's sha256 there. A stream cut short or
 * damaged is E_VOLUME_MOVE_VERIFY and leaves nothing on the target.
 */
export async function transferArchive(from: VolumeDriver, to: VolumeDriver, snapshotId: string, volumeName: string, options: TransferOptions = {}): Promise<ArchiveTransfer> {
  const sent = await from.treeHash({ snapshot: snapshotId });
  const { counter, bytes } = byteCounter(options.truncateAt);
  const source = from.exportSnapshot(snapshotId, { id: snapshotId, volume: volumeName, sha256: sent.sha256, bytes: sent.bytes, files: sent.files, createdAt: new Date().toISOString() });
  // A refusal before the file's end leaves nobody reading it: the source is stopped then.
  const importing = to.importSnapshot(snapshotId, counter).catch((err: unknown) => {
    counter.destroy();
    source.abort();
    throw err;
  });
  const [got, made, piped] = await Promise.allSettled([importing, source.done, pipeline(source.stream, counter)]);
  if (got.status === 'rejected') {
    const err: unknown = got.reason;
    if (isPierError(err) && err.code === 'E_SNAPSHOT_CORRUPT') {
      throw new PierError('E_VOLUME_MOVE_VERIFY', `the copy sent as a file arrived incomplete or damaged: ${err.message}`, { status: 500, hint: 'nothing was switched; the volume stays where it was', cause: err });
    }
    throw err;
  }
  // Read whole and checked by the target: an error of the source after that is only its echo.
  void made;
  void piped;
  return { bytes: bytes(), sent, got: got.value };
}

/** Counts the bytes through it; past `limit` it drops the rest (a truncated stream). */
function byteCounter(limit = Infinity): { counter: Transform; bytes: () => number } {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const room = limit - bytes;
      if (room <= 0) return done();
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      bytes += part.length;
      done(null, part);
    },
  });
  return { counter, bytes: () => bytes };
}
