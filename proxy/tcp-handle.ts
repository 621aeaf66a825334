// Node's own TCP handle (libuv's uv_tcp_t, `tcp_wrap`) used without the net.Socket stream around
// it. A net.Socket costs a Duplex with two stream states, an EventEmitter and a dozen events per
// connection; the proxy needs none of that: read, write, shutdown, close. Measured on this project's
// 2-core VM with `wrk Connection: close`: a net.Socket proxy spends ~180 µs of CPU per connection,
// the same proxy on these handles ~110 µs (docs/benchmarks.md). This is the only file that reaches
// into Node's internal bindings; net.Server still owns the listening socket (cluster, SCHED_NONE).

import type net from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { PeerAddress } from './peer-address.js';
import { normalizeIp } from './peer-address.js';

/** What a handle's reads and writes report back to; set per handle by its owner. */
export interface HandleOwner {
  /** `n` bytes were read into `buf` (a view the owner may keep). */
  onData(handle: TcpHandle, buf: Buffer): void;
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
  onread: (arrayBuffer: ArrayBuffer | undefined) => void;
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
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

const legacyBinding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
const tcpWrap = legacyBinding('tcp_wrap');
const streamWrap = legacyBinding('stream_wrap');
const B = { ...tcpWrap, ...streamWrap } as unknown as Bindings;
const state = B.streamBaseState;
const READ_RESULT = B.kReadBytesOrError;
const READ_OFFSET = B.kArrayBufferOffset;
const WRITE_ASYNC = B.kLastWriteWasAsync;
/** libuv's UV_EOF. */
const UV_EOF = -4095;
const UV_ECANCELED = -125;

/** A handle for an outgoing connection; see `connectHandle`. */
export function newTcpHandle(owner: HandleOwner): TcpHandle {
  const handle = new B.TCP(B.constants.SOCKET);
  handle.owner = owner;
  handle.onread = onRead;
  return handle;
}

/** Gives the handle's reads to `owner` (reading starts with `readStart()`). */
export function adoptHandle(handle: TcpHandle, owner: HandleOwner): void {
  handle.owner = owner;
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

/** Closes the handle; no event of it reaches its owner afterwards. Queued writes are dropped. */
export function closeHandle(handle: TcpHandle): void {
  const home = handle.home;
  handle.owner = undefined;
  handle.home = undefined;
  handle.close();
  home?.handleClosed();
}

export function remoteAddressOfHandle(handle: TcpHandle): PeerAddress {
  const out: AddressOut = {};
  handle.getpeername(out);
  return { address: normalizeIp(out.address ?? '0.0.0.0'), port: out.port ?? 0 };
}

export function localAddressOfHandle(handle: TcpHandle): PeerAddress {
  const out: AddressOut = {};
  handle.getsockname(out);
  return { address: normalizeIp(out.address ?? '0.0.0.0'), port: out.port ?? 0 };
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

function onRead(this: TcpHandle, arrayBuffer: ArrayBuffer | undefined): void {
  const owner = this.owner;
  if (owner === undefined) return;
  const n = state[READ_RESULT]!;
  if (n > 0) {
    owner.onData(this, Buffer.from(arrayBuffer!, state[READ_OFFSET]!, n));
  } else if (n === UV_EOF) {
    // libuv stops reading at EOF by itself.
    owner.onEnd(this);
  } else if (n < 0) {
    owner.onError(this, errorName(n));
  }
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
  if (status < 0 && status !== UV_ECANCELED && status !== -107) report(this.handle, status);
}

function report(handle: TcpHandle, code: number): void {
  handle.owner?.onError(handle, errorName(code));
}
