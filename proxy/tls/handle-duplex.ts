// A Duplex stream over a TcpHandle (tcp-io/), so node:tls can run on a connection the edge
// accepted in either I/O mode: reads are pushed with backpressure (the handle pauses when the
// stream's buffer is full), writes complete when the handle has flushed them.

import { Duplex } from 'node:stream';
import type { HandleOwner, TcpHandle } from '../tcp-io/tcp-io.js';

export class HandleDuplex extends Duplex implements HandleOwner {
  /** Buffers given to onData are kept by the stream: never the handle's own. */
  readonly borrows = false;
  private pendingWrite: ((err?: Error | null) => void) | null = null;

  constructor(readonly handle: TcpHandle) {
    super({ allowHalfOpen: true });
    handle.owner = this;
  }

  override _read(): void {
    if (this.handle.paused || !this.reading) {
      this.reading = true;
      this.handle.readStart();
    }
  }

  private reading = false;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.handle.write(chunk)) callback();
    else this.pendingWrite = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.handle.shutdown();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.handle.owner = undefined;
    this.handle.close();
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    pending?.(err ?? new Error('closed'));
    callback(err);
  }

  onData(_handle: TcpHandle, buf: Buffer): void {
    if (!this.push(buf)) this.handle.pause();
  }

  onEnd(): void {
    this.push(null);
  }

  onError(_handle: TcpHandle, code: string): void {
    this.destroy(Object.assign(new Error(`client ${code}`), { code }));
  }

  onFlushed(): void {
    const pending = this.pendingWrite;
    this.pendingWrite = null;
    pending?.();
  }
}
