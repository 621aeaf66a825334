// Sends one snapshot from a root's driver to another's as a byte stream (btrfs send | receive, or
// a tar for `dir`), counting the bytes. It is a stream on purpose: a move between nodes will carry
// the same bytes over the network instead of a local pipe. `truncateAt` cuts the stream short
// (fault injection for the move's proofs: the receiver must fail, and the source stay whole).
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { VolumeDriver } from './volume-driver.js';

export interface TransferOptions {
  /** Passes only this many bytes on (a truncated stream), then drops the rest. */
  truncateAt?: number | undefined;
}

/** Returns the bytes sent; rejects (E_VOLUME_DRIVER) when either end fails. */
export async function transferSnapshot(from: VolumeDriver, to: VolumeDriver, snapshotId: string, parentId: string | null, options: TransferOptions = {}): Promise<number> {
  let bytes = 0;
  const limit = options.truncateAt ?? Infinity;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      const room = limit - bytes;
      if (room <= 0) return done();
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      bytes += part.length;
      done(null, part);
    },
  });
  const source = from.send(snapshotId, parentId);
  const sink = to.receive(snapshotId);
  const [piped, sent, received] = await Promise.allSettled([pipeline(source.stream, counter, sink.stream), source.done, sink.done]);
  // The receiver's own words first: a broken pipe at the sender is only its echo.
  for (const r of [received, sent, piped]) if (r.status === 'rejected') throw r.reason;
  return bytes;
}
