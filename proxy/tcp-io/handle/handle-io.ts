// TcpIo on Node's own TCP handles (libuv's uv_tcp_t, `tcp_wrap`) without the net.Socket stream
// around them. A net.Socket costs a Duplex with two stream states, an EventEmitter and a dozen
// events per connection; the proxy needs none of that. Measured on this project's 2-core VM with
// `wrk Connection: close`: ~110 µs of CPU per connection here against ~180 µs on net.Socket
// (docs/benchmarks.md). This folder is the only code that reaches into Node's internal bindings;
// it is imported only when select-tcp-io.ts found them usable, and net.Server still owns the
// listening socket (cluster, SCHED_NONE).

import net from 'node:net';
import { constants } from 'node:os';
import type tls from 'node:tls';
import { getSystemErrorName } from 'node:util';
import { normalizeIp, type PeerAddress } from '../../peer-address.js';
import type { ConnectDone, HandleHome, HandleOwner, TcpHandle, TcpIo, TlsHandshakeEvents, TlsServerHandshake } from '../tcp-io.js';
import { BULK_READ, lendBuffer, returnBuffer, sharedBuffer } from './read-buffers.js';
import { TlsWrapHandle } from './tls-wrap-handle.js';
import { TlsWrapHandshake, tlsWrapBinding } from './tls-wrap-handshake.js';

/** The subset of Node's TCPWrap used here. */
interface NativeTcp {
  onread: () => Buffer | undefined;
  readonly writeQueueSize: number;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, buf: Uint8Array): number;
  writev(req: WriteReq, chunks: Buffer[], allBuffers: true): number;
  shutdown(req: ShutdownReq): number;
  close(callback?: () => void): void;
  setNoDelay(on: boolean): number;
  getpeername(out: AddressOut): number;
  getsockname(out: AddressOut): number;
  connect(req: ConnectReq, address: string, port: number): number;
  connect6(req: ConnectReq, address: string, port: number): number;
  useUserBuffer(buf: Buffer): void;
  /** Ours: the wrapper the native handle's callbacks report to. */
  pier?: BindingHandle;
}

interface AddressOut {
  address?: string;
  port?: number;
}

/** A request object: native code calls `oncomplete` with it as `this`; `from` is ours. */
interface WriteReq {
  from: BindingHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  buffer?: Buffer | Buffer[] | undefined;
}

interface ShutdownReq {
  from: BindingHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}

interface ConnectReq {
  from: BindingHandle;
  done: ConnectDone;
  oncomplete: (this: ConnectReq, status: number) => void;
}

interface Bindings {
  TCP: new (type: number) => NativeTcp;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const B = loadBindings();
/** The listener to tell when a socket made by toSocket() closes. */
const HOME = Symbol('pier.handleHome');
const state = B.streamBaseState;
const READ_RESULT = B.kReadBytesOrError;
const WRITE_ASYNC = B.kLastWriteWasAsync;
/** libuv's UV_EOF. */
const UV_EOF = -4095;
// libuv reports system errors as negative errno values.
const UV_ECANCELED = -constants.errno.ECANCELED;
const UV_ENOTCONN = -constants.errno.ENOTCONN;

export const handleIo: TcpIo = {
  mode: 'handle',
  accept(server, onHandle, onError) {
    const listening = (server as unknown as { _handle: { onconnection: (err: number, handle: NativeTcp | undefined) => void } | null })._handle;
    if (listening === null || typeof listening.onconnection !== 'function') throw new Error('handle i/o: the server is not listening on a TCP handle');
    listening.onconnection = (err, native) => {
      if (err !== 0 || native === undefined) {
        onError(errorName(err));
        return;
      }
      native.setNoDelay(true);
      onHandle(new BindingHandle(native, undefined));
    };
  },
  connect(owner, address, port, done) {
    const native = new B.TCP(B.constants.SOCKET);
    // libuv applies it when connect creates the socket: small writes (a PROXY header, a ping) go at once.
    native.setNoDelay(true);
    const handle = new BindingHandle(native, owner);
    const req = new B.TCPConnectWrap();
    req.from = handle;
    req.done = done;
    req.oncomplete = onConnectDone;
    const err = address.includes(':') ? native.connect6(req, address, port) : native.connect(req, address, port);
    if (err !== 0) process.nextTick(done, handle, errorName(err));
    return handle;
  },
};

class BindingHandle implements TcpHandle {
  home: HandleHome | undefined = undefined;
  paused = false;
  /** The buffer libuv reads into next (the shared one, or a private one in a bulk flow). */
  readBuffer: Buffer | undefined = sharedBuffer;
  closed = false;

  constructor(
    readonly native: NativeTcp,
    public owner: HandleOwner | undefined,
  ) {
    native.pier = this;
    native.onread = onRead;
    native.useUserBuffer(sharedBuffer);
  }

  get writeQueueSize(): number {
    return this.native.writeQueueSize;
  }

  readStart(): void {
    this.paused = false;
    this.native.readStart();
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.native.readStop();
  }

  write(buf: Buffer): boolean {
    const req = new B.WriteWrap();
    req.from = this;
    req.oncomplete = onWriteDone;
    return this.afterWrite(req, this.native.writeBuffer(req, buf), buf);
  }

  writev(chunks: Buffer[]): boolean {
    if (chunks.length === 1) return this.write(chunks[0]!);
    const req = new B.WriteWrap();
    req.from = this;
    req.oncomplete = onWriteDone;
    return this.afterWrite(req, this.native.writev(req, chunks, true), chunks);
  }

  shutdown(): void {
    const req = new B.ShutdownWrap();
    req.from = this;
    req.oncomplete = onShutdownDone;
    const err = this.native.shutdown(req);
    if (err !== 0 && err !== UV_ECANCELED) this.report(err);
  }

  close(bufferInUse = false): void {
    if (this.closed) return;
    this.closed = true;
    const buf = this.readBuffer;
    this.readBuffer = undefined;
    if (buf !== undefined && buf !== sharedBuffer) returnBuffer(buf, !bufferInUse);
    const home = this.home;
    this.owner = undefined;
    this.home = undefined;
    this.native.close();
    home?.handleClosed();
  }

  remoteAddress(): PeerAddress | null {
    const out: AddressOut = {};
    if (this.native.getpeername(out) !== 0 || out.address === undefined || out.port === undefined) return null;
    return { address: normalizeIp(out.address), port: out.port };
  }

  localAddress(): PeerAddress | null {
    const out: AddressOut = {};
    if (this.native.getsockname(out) !== 0 || out.address === undefined || out.port === undefined) return null;
    return { address: normalizeIp(out.address), port: out.port };
  }

  toSocket(): net.Socket {
    return bareSocket(this.native, this.giveAway());
  }

  cleartext(socket: tls.TLSSocket): TcpHandle {
    return TlsWrapHandle.fromSocket(socket);
  }

  /** Set on the prototype below where this Node's tls_wrap binding allows it. */
  declare tlsServer?: (context: tls.SecureContext, alpnWire: Buffer | undefined, events: TlsHandshakeEvents) => TlsServerHandshake;

  /** Gives the native handle away (toSocket(), tlsServer()): no more events, close() does nothing. */
  giveAway(): HandleHome | undefined {
    const home = this.home;
    this.closed = true;
    this.owner = undefined;
    this.home = undefined;
    const buf = this.readBuffer;
    this.readBuffer = undefined;
    if (buf !== undefined && buf !== sharedBuffer) returnBuffer(buf, true);
    return home;
  }

  report(code: number): void {
    this.owner?.onError(this, errorName(code));
  }

  private afterWrite(req: WriteReq, err: number, data: Buffer | Buffer[]): boolean {
    if (err !== 0) {
      process.nextTick(report, this, err);
      return false;
    }
    if (state[WRITE_ASYNC] === 0) return true;
    // libuv points into these bytes until the write completes.
    req.buffer = data;
    return false;
  }
}

// A TLS handshake on the TLSWrap binding itself (no TLSSocket), where the binding has what it needs.
if (tlsWrapBinding !== null) {
  BindingHandle.prototype.tlsServer = function tlsServer(this: BindingHandle, context, alpnWire, events) {
    return TlsWrapHandshake.start(this.native, this.giveAway(), context, alpnWire, events);
  };
}

/** Called by Node for every read; what it returns is the buffer the handle reads into next. */
function onRead(this: NativeTcp): Buffer | undefined {
  const handle = this.pier!;
  const owner = handle.owner;
  if (owner === undefined) return undefined;
  const n = state[READ_RESULT]!;
  if (n > 0) {
    const buf = handle.readBuffer!;
    if (buf !== sharedBuffer && n >= BULK_READ && owner.borrows) {
      // Still a bulk flow: the owner writes straight from our buffer and pauses us until that
      // write has left, so the next read cannot overwrite bytes not yet written.
      owner.onData(handle, buf.subarray(0, n));
      return undefined;
    }
    const copy = Buffer.allocUnsafe(n);
    buf.copy(copy, 0, 0, n);
    let next: Buffer | undefined;
    if (buf === sharedBuffer) {
      if (n >= BULK_READ && owner.borrows) next = lendBuffer();
    } else {
      // Reads turned small (or the owner stopped borrowing): nothing points into `buf` any more,
      // since a handle is only read again once what it last sent was written.
      returnBuffer(buf, true);
      next = sharedBuffer;
    }
    if (next !== undefined) handle.readBuffer = next;
    owner.onData(handle, copy);
    return next;
  } else if (n === UV_EOF) {
    // libuv stops reading at EOF by itself.
    owner.onEnd(handle);
  } else if (n < 0) {
    owner.onError(handle, errorName(n));
  }
  return undefined;
}

/**
 * What node:tls reads of the net.Socket it wraps (tls.TLSSocket takes a `net.Socket` with a
 * `_handle` as its native transport: _tls_wrap.js), without constructing one: a net.Socket costs a
 * Duplex and two stream states, and destroying it as much again, per connection. Its `destroy()`
 * (what TLSWrap's close calls) closes the handle, then emits 'close' and tells the listener.
 */
interface BareSocket {
  _handle: NativeTcp | null;
  destroyed: boolean;
  [HOME]: HandleHome | undefined;
  emit(event: string, ...args: unknown[]): boolean;
}

const bareSocketProto: object = Object.create(net.Socket.prototype, {
  // Data properties shadowing net.Socket's stream getters: nothing buffered either way.
  readableLength: { value: 0 },
  writableLength: { value: 0 },
  allowHalfOpen: { value: true, writable: true },
  connecting: { value: false, writable: true },
  // The end of the chain TLSSocket walks to refresh timers (net.Socket#_unrefTimer).
  _parent: { value: null, writable: true },
  destroyed: { value: false, writable: true },
  destroy: {
    value: function destroy(this: BareSocket): BareSocket {
      const native = this._handle;
      if (native === null) return this;
      this._handle = null;
      this.destroyed = true;
      native.close(() => {
        const home = this[HOME];
        this[HOME] = undefined;
        home?.handleClosed();
        this.emit('close', false);
      });
      return this;
    },
  },
});

function bareSocket(native: NativeTcp, home: HandleHome | undefined): net.Socket {
  const socket = Object.create(bareSocketProto) as BareSocket;
  socket._handle = native;
  socket[HOME] = home;
  return socket as unknown as net.Socket;
}

function onConnectDone(this: ConnectReq, status: number): void {
  this.done(this.from, status === 0 ? null : errorName(status));
}

function onWriteDone(this: WriteReq, status: number): void {
  const handle = this.from;
  this.buffer = undefined;
  if (status < 0) {
    if (status !== UV_ECANCELED) handle.report(status);
    return;
  }
  if (handle.native.writeQueueSize === 0) handle.owner?.onFlushed(handle);
}

function onShutdownDone(this: ShutdownReq, status: number): void {
  // ENOTCONN: the peer reset first; the read side reports that.
  if (status < 0 && status !== UV_ECANCELED && status !== UV_ENOTCONN) this.from.report(status);
}

function report(handle: BindingHandle, code: number): void {
  handle.report(code);
}

/** `ECONNRESET` for -104. */
function errorName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return `E${-code}`;
  }
}

/** Node's tcp_wrap and stream_wrap bindings; throws a sentence naming what is missing. */
function loadBindings(): Bindings {
  const legacy = (process as unknown as { binding?: (name: string) => Record<string, unknown> }).binding;
  if (typeof legacy !== 'function') throw new Error('this Node has no process.binding()');
  const b = { ...legacy('tcp_wrap'), ...legacy('stream_wrap') } as Record<string, unknown>;
  const missing = ['TCP', 'TCPConnectWrap', 'WriteWrap', 'ShutdownWrap', 'constants', 'streamBaseState', 'kReadBytesOrError', 'kLastWriteWasAsync'].filter(
    (name) => b[name] === undefined,
  );
  const proto = (b.TCP as { prototype?: Record<string, unknown> } | undefined)?.prototype ?? {};
  for (const method of ['readStart', 'readStop', 'writeBuffer', 'writev', 'shutdown', 'close', 'useUserBuffer', 'getpeername', 'getsockname', 'connect', 'connect6']) {
    if (typeof proto[method] !== 'function') missing.push(`TCP.${method}`);
  }
  if (missing.length > 0) throw new Error(`Node's tcp_wrap binding lacks ${missing.join(', ')}`);
  return b as unknown as Bindings;
}
