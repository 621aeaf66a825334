// The cleartext side of a terminated TLS connection as a TcpHandle, read and written on node:tls's
// native TLSWrap (the StreamBase a TLSSocket sits on) instead of through the TLSSocket's streams:
// no Readable/Writable, no events per chunk, no copy of what is written (OpenSSL encrypts it
// during the write call). Made by BindingHandle.cleartext() once the handshake on the socket its
// toSocket() made is done; tls/tls-handle.ts is the stream-based equivalent for the other cases.
//
// TLSWrap takes one write at a time (a second one while the first is in flight aborts the
// process) and completes every write asynchronously, so writes made meanwhile are queued here
// and go out together, and the owner hears onFlushed only when nothing is left in flight.

import type tls from 'node:tls';
import { getSystemErrorName } from 'node:util';
import type { PeerAddress } from '../../peer-address.js';
import { normalizeIp } from '../../peer-address.js';
import type { HandleHome, HandleOwner, TcpHandle } from '../tcp-io.js';

/** The subset of Node's TLSWrap used here (a StreamBase). */
export interface NativeTls {
  onread: (arrayBuffer: ArrayBuffer | undefined) => void;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  writev(req: WriteReq, chunks: Buffer[], allBuffers: true): number;
  shutdown(req: ShutdownReq): number;
  close?(callback?: () => void): void;
  getpeername(out: { address?: string; port?: number }): number;
  getsockname(out: { address?: string; port?: number }): number;
  pierTls?: TlsWrapHandle;
}

interface WriteReq {
  from: TlsWrapHandle;
  bytes: number;
  oncomplete: (this: WriteReq, status: number) => void;
  buffer?: Buffer | Buffer[] | undefined;
}

interface ShutdownReq {
  from: TlsWrapHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}

interface StreamBindings {
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
}

// Only imported by handle-io.ts, after select-tcp-io.ts found the internal bindings usable.
const S = (process as unknown as { binding(name: string): StreamBindings }).binding('stream_wrap');
const state = S.streamBaseState;
const UV_EOF = -4095;
const HANDLE = Symbol('pier.tlsWrapHandle');

type OwnedTlsSocket = tls.TLSSocket & { [HANDLE]?: TlsWrapHandle };

export class TlsWrapHandle implements TcpHandle {
  owner: HandleOwner | undefined = undefined;
  home: HandleHome | undefined = undefined;
  paused = true;
  private closed = false;
  private ended = false;
  /** Bytes handed to TLSWrap whose write has not completed, plus those queued behind it. */
  private pendingBytes = 0;
  private inFlight = false;
  private queue: Buffer[] | null = null;
  private shutdownWanted = false;
  private readonly native: NativeTls;

  /**
   * `closeNative` closes the TLSWrap and the TCP handle beneath (once): TLSWrap's own close() when
   * a TLSSocket made it, else tls-wrap-handshake.ts's.
   */
  constructor(
    native: NativeTls,
    private readonly closeNative: () => void,
  ) {
    this.native = native;
    native.pierTls = this;
    native.onread = onRead;
    // Handles start out not reading (libuv applies this lazily: no system call if read again soon).
    native.readStop();
  }

  /** The cleartext side of a TLSSocket's completed handshake (the socket stays as a shell). */
  static fromSocket(socket: OwnedTlsSocket): TlsWrapHandle {
    const native = (socket as unknown as { _handle: NativeTls })._handle;
    const handle = new TlsWrapHandle(native, () => native.close!());
    // TLS alerts after the handshake (a bad record, a client's fatal alert) are reported as the
    // socket's 'error' or, for a TLSSocket outside a tls.Server, only as node's '_tlsError'.
    socket[HANDLE] = handle;
    socket.removeAllListeners('error');
    socket.on('error', onTlsError);
    socket.on('_tlsError', onTlsError);
    // Cleartext that reached the TLSSocket's stream before this took over (none expected: the
    // handshake-done callback runs before OpenSSL returns data read with the Finished).
    if (socket.readableLength > 0) {
      let b: Buffer | null;
      while ((b = socket.read() as Buffer | null) !== null) (handle.early ??= []).push(b);
    }
    return handle;
  }

  private early: Buffer[] | null = null;

  get writeQueueSize(): number {
    return this.closed ? 0 : this.pendingBytes;
  }

  readStart(): void {
    this.paused = false;
    const early = this.early;
    if (early !== null) {
      this.early = null;
      for (const b of early) this.owner?.onData(this, b);
    }
    if (!this.paused && !this.closed) this.native.readStart();
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.native.readStop();
  }

  write(buf: Buffer): boolean {
    if (this.closed) return true;
    this.pendingBytes += buf.length;
    if (this.inFlight) {
      // Not copied: we return false, so a borrowing owner keeps its reader paused until onFlushed.
      (this.queue ??= []).push(buf);
      return false;
    }
    // OpenSSL has encrypted `buf` when this returns: the caller may reuse it and write on.
    return this.send([buf]);
  }

  writev(chunks: Buffer[]): boolean {
    if (this.closed) return true;
    for (const c of chunks) this.pendingBytes += c.length;
    if (this.inFlight) {
      (this.queue ??= []).push(...chunks);
      return false;
    }
    return this.send(chunks);
  }

  shutdown(): void {
    if (this.closed) return;
    if (this.inFlight) {
      this.shutdownWanted = true;
      return;
    }
    const req = new S.ShutdownWrap();
    req.from = this;
    req.oncomplete = onShutdownDone;
    const err = this.native.shutdown(req);
    if (err !== 0) process.nextTick(reportLater, this, errorName(err));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.owner = undefined;
    this.queue = null;
    // Frees the SSL and closes the socket beneath (the listener's count drops then).
    this.closeNative();
  }

  remoteAddress(): PeerAddress | null {
    const out: { address?: string; port?: number } = {};
    if (this.closed || this.native.getpeername(out) !== 0 || out.address === undefined || out.port === undefined) return null;
    return { address: normalizeIp(out.address), port: out.port };
  }

  localAddress(): PeerAddress | null {
    const out: { address?: string; port?: number } = {};
    if (this.closed || this.native.getsockname(out) !== 0 || out.address === undefined || out.port === undefined) return null;
    return { address: normalizeIp(out.address), port: out.port };
  }

  /** Hands `chunks` to TLSWrap (OpenSSL encrypts them now); completion follows asynchronously. */
  private send(chunks: Buffer[]): boolean {
    const req = new S.WriteWrap();
    req.from = this;
    req.oncomplete = onWriteDone;
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    req.bytes = bytes;
    const err = chunks.length === 1 ? this.native.writeBuffer(req, chunks[0]!) : this.native.writev(req, chunks, true);
    if (err !== 0) {
      this.pendingBytes -= bytes;
      process.nextTick(reportLater, this, errorName(err));
      return false;
    }
    req.buffer = chunks.length === 1 ? chunks[0] : chunks;
    this.inFlight = true;
    return true;
  }

  /** A write completed: send what queued behind it, or tell the owner everything is out. */
  written(req: WriteReq, status: number): void {
    this.inFlight = false;
    this.pendingBytes -= req.bytes;
    if (this.closed) return;
    if (status < 0) {
      this.owner?.onError(this, errorName(status));
      return;
    }
    const queue = this.queue;
    if (queue !== null) {
      this.queue = null;
      this.send(queue);
      return;
    }
    if (this.shutdownWanted) {
      this.shutdownWanted = false;
      this.shutdown();
    }
    this.owner?.onFlushed(this);
  }

  /** A read, EOF or error from TLSWrap (cleartext, already decrypted). */
  read(arrayBuffer: ArrayBuffer | undefined): void {
    const owner = this.owner;
    if (owner === undefined || this.closed) return;
    const n = state[S.kReadBytesOrError]!;
    if (n > 0) {
      if (arrayBuffer !== undefined) owner.onData(this, Buffer.from(arrayBuffer, state[S.kArrayBufferOffset]!, n));
    } else if (n === UV_EOF) {
      // Once: the peer's close_notify and then its FIN may each be reported as the end.
      if (this.ended) return;
      this.ended = true;
      owner.onEnd(this);
    } else if (n < 0) {
      owner.onError(this, errorName(n));
    }
  }

  tlsError(code: string): void {
    if (!this.closed) this.owner?.onError(this, code);
  }
}

function onRead(this: NativeTls, arrayBuffer: ArrayBuffer | undefined): void {
  this.pierTls?.read(arrayBuffer);
}

function onWriteDone(this: WriteReq, status: number): void {
  this.buffer = undefined;
  this.from.written(this, status);
}

function onShutdownDone(this: ShutdownReq, status: number): void {
  // ENOTCONN (the peer reset first) and the like: the read side reports it.
  void status;
}

function onTlsError(this: OwnedTlsSocket, err: NodeJS.ErrnoException): void {
  this[HANDLE]?.tlsError(err.code ?? 'EPROTO');
}

function errorName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return `E${-code}`;
  }
}

function reportLater(handle: TlsWrapHandle, code: string): void {
  handle.tlsError(code);
}
