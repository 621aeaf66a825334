// The built-in port-80 answer of an endpoint with httpRedirect: read one HTTP request head (at most
// 8 KiB, under the hello deadline), answer 308 to https on the same host (port dropped: https is
// on 443) and path, and close. No backend is involved. A request without a usable Host gets 400.

import type { IdleSweeper, Sweepable } from '../idle-sweeper.js';
import type { HandleOwner, TcpHandle } from '../tcp-io/tcp-io.js';

const HEAD_LIMIT = 8 * 1024;
const HOST = /^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/;

export class HttpRedirect implements Sweepable, HandleOwner {
  readonly borrows = false;
  private buffered: Buffer | null = null;
  private answered = false;
  private closed = false;

  private constructor(
    private readonly socket: TcpHandle,
    private readonly sweeper: IdleSweeper,
    private readonly deadline: number,
  ) {}

  static start(socket: TcpHandle, sweeper: IdleSweeper, timeoutMs: number): HttpRedirect {
    const r = new HttpRedirect(socket, sweeper, sweeper.now + timeoutMs + sweeper.tickMs);
    socket.owner = r;
    sweeper.add(r);
    socket.readStart();
    return r;
  }

  sweep(now: number): void {
    if (now >= this.deadline) this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.sweeper.delete(this);
    this.socket.owner = undefined;
    this.socket.close();
  }

  onData(_handle: TcpHandle, chunk: Buffer): void {
    if (this.answered) return;
    const buf = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) {
      if (buf.length > HEAD_LIMIT) return this.answer(badRequest('request head too large'));
      this.buffered = buf;
      return;
    }
    this.buffered = null;
    this.answer(redirectFor(buf.subarray(0, end).toString('latin1')));
  }

  onEnd(): void {
    if (!this.answered) this.destroy();
  }

  onError(): void {
    this.destroy();
  }

  onFlushed(): void {
    if (this.answered) this.destroy();
  }

  private answer(response: string): void {
    this.answered = true;
    this.socket.pause();
    if (this.socket.write(Buffer.from(response, 'latin1'))) this.destroy();
  }
}

/** The response to one request head (request line and headers, without the blank line). */
export function redirectFor(head: string): string {
  const lines = head.split('\r\n');
  const [, target] = (lines[0] ?? '').split(' ');
  let host: string | undefined;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'host') host = line.slice(colon + 1).trim();
  }
  if (host === undefined || host === '') return badRequest('no Host header');
  // Drop the port: https is served on 443.
  const bare = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  if (!HOST.test(bare)) return badRequest('bad Host header');
  const path = target !== undefined && target.startsWith('/') && !/[\r\n\s]/.test(target) ? target : '/';
  const location = `https://${bare.toLowerCase()}${path}`;
  return `HTTP/1.1 308 Permanent Redirect\r\nLocation: ${location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`;
}

function badRequest(why: string): string {
  const body = `${why}\n`;
  return `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
}
