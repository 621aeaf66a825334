// Closing a connection whose client is still sending (a body refused with 413): closing the
// socket with unread bytes makes the kernel send a reset, which can destroy the answer before the
// client reads it. Like HTTP servers' "lingering close", send our FIN, keep reading and
// discarding the client's bytes for a bounded time, then close.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

const LINGER_MS = 2_000;
const LINGER_BYTES = 64 * 1024 * 1024;

/** Makes the HTTP server's close of this request's socket (after the answer) a lingering one. */
export function lingerOnClose(incoming: IncomingMessage | undefined): void {
  const socket = incoming?.socket as (Socket & { destroySoon?: () => void }) | undefined;
  if (!socket || socket.destroyed) return;
  let lingering = false;
  socket.destroySoon = () => {
    if (lingering) return;
    lingering = true;
    let read = 0;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > LINGER_BYTES) socket.destroy();
    });
    socket.once('close', () => clearTimeout(timer));
    socket.end();
    socket.resume();
  };
}
