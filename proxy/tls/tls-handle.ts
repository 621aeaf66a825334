// The cleartext side of a terminated TLS connection, seen as a TcpHandle (tcp-io/), so the
// Connection that splices client and backend works unchanged on it. Addresses are the TCP
// connection's; the listener counts the TCP handle beneath, not this one.

import type tls from 'node:tls';
import type { PeerAddress } from '../peer-address.js';
import type { HandleHome, HandleOwner, TcpHandle } from '../tcp-io/tcp-io.js';

export class TlsHandle implements TcpHandle {
  owner: HandleOwner | undefined = undefined;
  home: HandleHome | undefined = undefined;
  paused = true;
  private closed = false;
  private ended = false;
  /** Bytes are queued: tell the owner once the queue is empty (it may wait for that to close). */
  private needFlush = false;
  /** Each write's callback: the queue may have just run empty ('drain' comes only after a full one). */
  private readonly written = (err?: Error | null): void => {
    if (err != null || !this.needFlush || this.closed || this.socket.writableLength !== 0) return;
    this.needFlush = false;
    this.owner?.onFlushed(this);
  };

  constructor(
    private readonly socket: tls.TLSSocket,
    private readonly raw: TcpHandle,
  ) {
    socket.pause();
    socket.on('data', (buf: Buffer) => this.owner?.onData(this, buf));
    socket.on('end', () => {
      this.ended = true;
      this.owner?.onEnd(this);
    });
    const onError = (err: NodeJS.ErrnoException): void => {
      if (!this.closed) this.owner?.onError(this, err.code ?? 'EPROTO');
    };
    socket.on('error', onError);
    // A TLSSocket outside a tls.Server reports TLS errors after the handshake (a client's fatal
    // alert, say after its renegotiation was refused; node's ERR_TLS_SESSION_ATTACK) only as
    // node's internal '_tlsError' event: without this the connection would stay open.
    socket.on('_tlsError', onError);
    socket.on('close', () => {
      // Gone without a FIN or an error we saw (the TCP side closed): the same as a reset.
      if (!this.closed && !this.ended) this.owner?.onError(this, 'ECONNRESET');
    });
    socket.on('drain', () => this.written());
  }

  get writeQueueSize(): number {
    return this.closed ? 0 : this.socket.writableLength;
  }

  readStart(): void {
    this.paused = false;
    this.socket.resume();
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  write(buf: Buffer): boolean {
    // `buf` may be a read buffer the backend handle lends only until its next read: copy it, as
    // the stream may hold it past this call.
    const ok = this.socket.write(Buffer.from(buf), this.written);
    if (this.socket.writableLength > 0) this.needFlush = true;
    return ok;
  }

  writev(chunks: Buffer[]): boolean {
    this.socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(Buffer.from(c), this.written) && ok;
    this.socket.uncork();
    if (this.socket.writableLength > 0) this.needFlush = true;
    return ok;
  }

  shutdown(): void {
    this.socket.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner = undefined;
    this.socket.destroy();
  }

  remoteAddress(): PeerAddress | null {
    return this.raw.remoteAddress();
  }

  localAddress(): PeerAddress | null {
    return this.raw.localAddress();
  }
}
