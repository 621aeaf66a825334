// The buffers backend sockets read into (the `onread` option), instead of the fresh 64 KiB buffer
// Node allocates for every read. One shared buffer for quiet sockets, whose bytes are copied out
// at once; a small free list of private buffers for sockets in a bulk flow (see connection.ts).

export const READ_BUFFER_SIZE = 64 * 1024;
const MAX_FREE = 16;

/** Any socket may read into it: reads are one at a time and its bytes never outlive the callback. */
export const sharedReadBuffer: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
const free: Buffer[] = [];
let upcoming: Buffer = sharedReadBuffer;

/** The `onread.buffer` function: Node calls it once at connect and right after every read callback. */
export function nextReadBuffer(): Buffer {
  const buf = upcoming;
  upcoming = sharedReadBuffer;
  return buf;
}

/** Called from a read callback: the socket's next read goes into `buf` instead of the shared one. */
export function readNextInto(buf: Buffer): void {
  upcoming = buf;
}

export function takeReadBuffer(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
}

/** Only once nothing queued for writing still points into `buf`. */
export function giveBackReadBuffer(buf: Buffer): void {
  if (free.length < MAX_FREE) free.push(buf);
}
