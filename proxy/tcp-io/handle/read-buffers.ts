// Read buffers for bare handles. Reads go into buffers the edge owns instead of the fresh 64 KiB
// one Node allocates for every read: a handle starts on the process's shared buffer, whose bytes
// are copied out at once (a small, pooled allocation); a handle whose reads come in big gets a
// private buffer from a free list, handed to its owner as is (no copy), and goes back to the
// shared one when its reads turn small again.

export const READ_BUFFER_SIZE = 64 * 1024;
/** Reads at least this big move a borrowing owner's handle to a private buffer. */
export const BULK_READ = 16 * 1024;
const MAX_FREE_BUFFERS = 32;
/**
 * Private buffers lent to handles at once, per process (16 MiB). A handle keeps its private buffer
 * until it reads again (or closes), so a connection that goes quiet right after a bulk transfer
 * holds one; past the cap, bulk reads go through the shared buffer with a copy.
 */
const MAX_LENT_BUFFERS = 256;

export const sharedBuffer: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
const freeBuffers: Buffer[] = [];
let lentBuffers = 0;

/** A private read buffer, or undefined past the cap. */
export function lendBuffer(): Buffer | undefined {
  if (lentBuffers >= MAX_LENT_BUFFERS) return undefined;
  lentBuffers++;
  return freeBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
}

/** `reusable`: nothing points into `buf` any more, so another handle may read into it. */
export function returnBuffer(buf: Buffer, reusable: boolean): void {
  lentBuffers--;
  if (reusable && freeBuffers.length < MAX_FREE_BUFFERS) freeBuffers.push(buf);
}
