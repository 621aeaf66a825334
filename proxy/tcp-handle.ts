// Node's own TCP handle (libuv's uv_tcp_t, `tcp_wrap`) used without the net.Socket stream around
// it. A net.Socket costs a Duplex with two stream states, an EventEmitter and a dozen events per
// connection; the proxy needs none of that: read, write, shutdown, close. Measured on this project's
// 2-core VM with `wrk Connection: close`: a net.Socket proxy spends ~180 µs of CPU per connection,
// the same proxy on these handles ~110 µs (docs/benchmarks.md). This is the only file that reaches
// into Node's internal bindings; net.Server still owns the listening socket (cluster, SCHED_NONE).

import type net from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import type { PeerAddress } from './peer-address.js';
import { normalizeIp } from './peer-address.js';

/** What a handle's reads and writes report back to; set per handle by its owner. */
export interface HandleOwner {
  /**
   * Bytes read. The owner may keep `buf`, unless it said `borrows`: then `buf` may be the handle's
   * read buffer, valid until the handle reads again, so the owner must either be done with it on
   * return or stop the handle reading (readStop) until what it wrote from `buf` is flushed.
   */
  onData(handle: TcpHandle, buf: Buffer): void;
  /** True when onData may be given the read buffer itself (see onData). */
  readonly borrows: boolean;
  /** The peer sent its FIN. */
  onEnd(handle: TcpHandle): void;
  /** A read or write failed (ECONNRESET, EPIPE ...); `code` is the system error name. */
  onError(handle: TcpHandle, code: string): void;
  /** Everything written to `handle` so far has reached the kernel. */
  onFlushed(handle: TcpHandle): void;
}

/** Counts the accepted handles of a listener that are still open. */
export interface HandleHome {
  handleClosed(): void;
}

/** The subset of Node's TCPWrap the proxy uses. */
export interface TcpHandle {
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
  /** Ours: who gets this handle's events; undefined once it is closed. */
  owner?: HandleOwner | undefined;
  /** Ours: set while a read was stopped because the other side's writes are queued. */
  paused?: boolean;
  /** Ours: the listener that accepted this handle, told when it closes. */
  home?: HandleHome | undefined;
  /** Ours: the buffer libuv reads into next (the shared one, or a private one in a bulk flow). */
  readBuffer?: Buffer | undefined;
  /** Ours: set by closeHandle, which runs once per handle. */
  closed?: boolean;
  useUserBuffer(buf: Buffer): void;
}

interface AddressOut {
  address?: string;
  port?: number;
  family?: string;
}

interface WriteReq {
  handle: TcpHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  buffer?: Buffer | Buffer[];
}

interface ShutdownReq {
  handle: TcpHandle;
  oncomplete: (this: ShutdownReq, status: number) => void;
}

interface ConnectReq {
  oncomplete: (status: number, handle: TcpHandle) => void;
}

interface Bindings {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => ConnectReq;
  constants: { SOCKET: number };
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => ShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const legacyBinding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
const tcpWrap = legacyBinding('tcp_wrap');
const streamWrap = legacyBinding('stream_wrap');
const B = { ...tcpWrap, ...streamWrap } as unknown as Bindings;
const state = B.streamBaseState;
const READ_RESULT = B.kReadBytesOrError;
const WRITE_ASYNC = B.kLastWriteWasAsync;
/** libuv's UV_EOF. */
const UV_EOF = -4095;
// libuv reports system errors as negative errno values.
const UV_ECANCELED = -constants.errno.ECANCELED;
const UV_ENOTCONN = -constants.errno.ENOTCONN;

// Reads go into buffers we own instead of the fresh 64 KiB one Node allocates for every read. A
// handle starts on the shared buffer, whose bytes are copied out at once (a small, pooled
// allocation); a handle whose reads come in big gets a private buffer from a free list, handed to
// its owner as is (no copy), and goes back to the shared one when its reads turn small again.
const READ_BUFFER_SIZE = 64 * 1024;
/** Reads at least this big move a borrowing owner's handle to a private buffer. */
const BULK_READ = 16 * 1024;
const MAX_FREE_BUFFERS = 32;
/**
 * Private buffers lent to handles at once, per process (16 MiB). A handle keeps its private buffer
 * until it reads again (or closes), so a connection that goes quiet right after a bulk transfer
 * holds one; past the cap, bulk reads go through the shared buffer with a copy.
 */
const MAX_LENT_BUFFERS = 256;
const sharedBuffer: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
const freeBuffers: Buffer[] = [];
let lentBuffers = 0;

function lendBuffer(): Buffer | undefined {
  if (lentBuffers >= MAX_LENT_BUFFERS) return undefined;
  lentBuffers++;
  return freeBuffers.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
}

/** `reusable`: nothing points into `buf` any more, so another handle may read into it. */
function returnBuffer(buf: Buffer, reusable: boolean): void {
  lentBuffers--;
  if (reusable && freeBuffers.length < MAX_FREE_BUFFERS) freeBuffers.push(buf);
}

/** A handle for an outgoing connection; see `connectHandle`. */
export function newTcpHandle(owner: HandleOwner): TcpHandle {
  const handle = new B.TCP(B.constants.SOCKET);
  // libuv applies it when connect creates the socket: small writes (a PROXY header, a ping) go at once.
  handle.setNoDelay(true);
  adoptHandle(handle, owner);
  return handle;
}

/** Gives the handle's reads to `owner` (reading starts with `readStart()`). */
export function adoptHandle(handle: TcpHandle, owner: HandleOwner): void {
  handle.owner = owner;
  if (handle.readBuffer === undefined) {
    handle.readBuffer = sharedBuffer;
    handle.useUserBuffer(sharedBuffer);
  }
  handle.onread = onRead;
}

/**
 * Starts connecting; `done` gets 0 or a negative libuv code (ECONNREFUSED ...). A code returned at
 * once (EADDRNOTAVAIL ...) is also passed to `done`, on the next tick, so callers have one path.
 */
export function connectHandle(handle: TcpHandle, address: string, port: number, done: (handle: TcpHandle, status: number) => void): void {
  const req = new B.TCPConnectWrap();
  req.oncomplete = (status: number) => done(handle, status);
  const err = address.includes(':') ? handle.connect6(req, address, port) : handle.connect(req, address, port);
  if (err !== 0) process.nextTick(done, handle, err);
}

/** Writes `buf`; false when it did not all reach the kernel (owner.onFlushed follows later). */
export function writeHandle(handle: TcpHandle, buf: Buffer): boolean {
  const req = new B.WriteWrap();
  req.handle = handle;
  req.oncomplete = onWriteDone;
  const err = handle.writeBuffer(req, buf);
  return afterWrite(handle, req, err, buf);
}

/** Writes `chunks` in one system call where the kernel takes them (writev). */
export function writevHandle(handle: TcpHandle, chunks: Buffer[]): boolean {
  if (chunks.length === 1) return writeHandle(handle, chunks[0]!);
  const req = new B.WriteWrap();
  req.handle = handle;
  req.oncomplete = onWriteDone;
  const err = handle.writev(req, chunks, true);
  return afterWrite(handle, req, err, chunks);
}

/** Sends our FIN once every queued write has left. */
export function shutdownHandle(handle: TcpHandle): void {
  const req = new B.ShutdownWrap();
  req.handle = handle;
  req.oncomplete = onShutdownDone;
  const err = handle.shutdown(req);
  if (err !== 0 && err !== UV_ECANCELED) report(handle, err);
}

/**
 * Closes the handle; no event of it reaches its owner afterwards. Queued writes are dropped.
 * `bufferInUse`: a write still queued elsewhere points into this handle's read buffer, so the
 * buffer is left to the GC instead of going back to the free list.
 */
export function closeHandle(handle: TcpHandle, bufferInUse = false): void {
  if (handle.closed === true) return;
  handle.closed = true;
  const buf = handle.readBuffer;
  handle.readBuffer = undefined;
  if (buf !== undefined && buf !== sharedBuffer) returnBuffer(buf, !bufferInUse);
  const home = handle.home;
  handle.owner = undefined;
  handle.home = undefined;
  handle.close();
  home?.handleClosed();
}

/** The peer's address; null when the peer is already gone (reset before we asked: ENOTCONN). */
export function remoteAddressOfHandle(handle: TcpHandle): PeerAddress | null {
  const out: AddressOut = {};
  if (handle.getpeername(out) !== 0 || out.address === undefined || out.port === undefined) return null;
  return { address: normalizeIp(out.address), port: out.port };
}

/** The handle's own address (the one a client reached on a wildcard listener); null as above. */
export function localAddressOfHandle(handle: TcpHandle): PeerAddress | null {
  const out: AddressOut = {};
  if (handle.getsockname(out) !== 0 || out.address === undefined || out.port === undefined) return null;
  return { address: normalizeIp(out.address), port: out.port };
}

/** `ECONNRESET` for -104. */
export function errorName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return `E${-code}`;
  }
}

/**
 * Takes over accepting for a listening net.Server: each accepted connection arrives as a bare
 * handle (not reading, TCP_NODELAY set) instead of a net.Socket. Call once it is listening. The
 * server no longer counts these connections: `server.close()` only stops the listening socket.
 */
export function acceptHandles(server: net.Server, onHandle: (handle: TcpHandle) => void, onError: (code: string) => void): void {
  const listening = (server as unknown as { _handle: { onconnection: (err: number, handle: TcpHandle | undefined) => void } | null })._handle;
  if (listening === null) throw new Error('acceptHandles: the server is not listening');
  listening.onconnection = (err, handle) => {
    if (err !== 0 || handle === undefined) {
      onError(errorName(err));
      return;
    }
    handle.setNoDelay(true);
    onHandle(handle);
  };
}

/** Called by Node for every read; what it returns is the buffer the handle reads into next. */
function onRead(this: TcpHandle): Buffer | undefined {
  const owner = this.owner;
  if (owner === undefined) return undefined;
  const n = state[READ_RESULT]!;
  if (n > 0) {
    const buf = this.readBuffer!;
    if (buf !== sharedBuffer && n >= BULK_READ && owner.borrows) {
      // Still a bulk flow: the owner writes straight from our buffer and stops us reading until
      // that write has left, so the next read cannot overwrite bytes not yet written.
      owner.onData(this, buf.subarray(0, n));
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
    if (next !== undefined) this.readBuffer = next;
    owner.onData(this, copy);
    return next;
  } else if (n === UV_EOF) {
    // libuv stops reading at EOF by itself.
    owner.onEnd(this);
  } else if (n < 0) {
    owner.onError(this, errorName(n));
  }
  return undefined;
}

function afterWrite(handle: TcpHandle, req: WriteReq, err: number, data: Buffer | Buffer[]): boolean {
  if (err !== 0) {
    process.nextTick(report, handle, err);
    return false;
  }
  if (state[WRITE_ASYNC] === 0) return true;
  // libuv points into these bytes until the write completes.
  req.buffer = data;
  return false;
}

function onWriteDone(this: WriteReq, status: number): void {
  const handle = this.handle;
  this.buffer = undefined;
  if (status < 0) {
    if (status !== UV_ECANCELED) report(handle, status);
    return;
  }
  if (handle.writeQueueSize === 0) handle.owner?.onFlushed(handle);
}

function onShutdownDone(this: ShutdownReq, status: number): void {
  // ENOTCONN: the peer reset first; the read side reports that.
  if (status < 0 && status !== UV_ECANCELED && status !== UV_ENOTCONN) report(this.handle, status);
}

function report(handle: TcpHandle, code: number): void {
  handle.owner?.onError(handle, errorName(code));
}
