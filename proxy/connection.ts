// One proxied TCP connection: a flat object holding both sockets, driven by shared module-level
// handlers (no closures per connection). Until the backend accepts, the client's bytes are kept so
// a refused or timed-out connect can be retried on another backend without losing any of them.

import net, { type Socket } from 'node:net';
import type { Logger } from 'pino';
import { giveBackReadBuffer, nextReadBuffer, readNextInto, sharedReadBuffer, takeReadBuffer } from './backend-read-buffers.js';
import type { Backend, BackendConnection, EjectionPolicy } from './backend.js';
import type { ConnectionLog, EndReason } from './connection-log.js';
import type { IdleSweeper, Sweepable } from './idle-sweeper.js';
import type { PeerAddress } from './peer-address.js';
import { buildProxyHeader, nextUniqueId } from './proxy-header.js';
import type { Route } from './route-table.js';

/** Shared by every connection of one edge. */
export interface ConnectionOptions {
  connectTimeoutMs: number;
  /** Backends tried per connection, each at most once. */
  maxConnectAttempts: number;
  /** Inactivity allowed once one side has sent its FIN. */
  finTimeoutMs: number;
  ejection: EjectionPolicy;
  sweeper: IdleSweeper;
  connectionLog: ConnectionLog;
  log: Logger;
}

/** Where the connection came from and what was read before routing (PROXY-in, SNI peek). */
export interface ConnectionOrigin {
  /** The client's real address (after PROXY-in). */
  source: PeerAddress;
  /** The address:port the client reached. */
  destination: PeerAddress;
  /** Client bytes already read (a ClientHello, bytes after a PROXY header), forwarded first. */
  initial: Buffer | null;
  serverName: string | null;
  listener: string;
  startedAt: number;
}

// Errors that mean "this backend did not take the connection": safe to try another one.
const RETRYABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

const CONNECTION = Symbol('pier.connection');
type Tagged = Socket & { [CONNECTION]?: Connection | undefined };

/** Proxies `client` to `backend` of `route`; the caller has admitted it and picked the backend. */
export function startConnection(
  client: Socket,
  route: Route,
  backend: Backend,
  origin: ConnectionOrigin,
  options: ConnectionOptions,
): Connection {
  const uniqueId = route.tlvUniqueId ? nextUniqueId() : null;
  const header = buildProxyHeader(
    route.endpoint.proxyProtocol,
    origin.source,
    origin.destination,
    route.tlvAuthority || uniqueId !== null || route.tlvCrc32c
      ? { authority: route.tlvAuthority ? origin.serverName : null, uniqueId, crc32c: route.tlvCrc32c }
      : undefined,
  );
  const connection = new Connection(client, route, header, origin, uniqueId, options);
  (client as Tagged)[CONNECTION] = connection;
  // noDelay and allowHalfOpen come from the listening server's options.
  client.on('data', onClientData);
  client.on('end', onClientEnd);
  client.on('drain', onClientDrain);
  client.on('error', onError);
  client.on('close', onClientClose);
  route.stats.active++;
  route.stats.total++;
  if (route.endpoint.maxConnectionsPerClient !== undefined) {
    const perClient = route.stats.perClient;
    connection.clientKey = origin.source.address;
    perClient.set(connection.clientKey, (perClient.get(connection.clientKey) ?? 0) + 1);
  }
  if (origin.initial !== null) {
    connection.replay!.push(origin.initial);
    connection.bytesIn += origin.initial.length;
    route.stats.bytesIn += origin.initial.length;
  }
  options.sweeper.add(connection);
  connection.connect(backend);
  return connection;
}

export class Connection implements BackendConnection, Sweepable {
  backendSocket: Tagged | null = null;
  backend: Backend | null = null;
  /** Client bytes sent while the backend connect is in flight; null once connected. */
  replay: Buffer[] | null = [];
  tried: Backend[] | null = null;
  connected = false;
  clientEnded = false;
  backendEnded = false;
  /** Sockets of this connection not yet closed; the connection is finished at zero. */
  open = 2;
  bytesIn = 0;
  bytesOut = 0;
  /** The sweeper's clock at the last byte or FIN. */
  lastActivity: number;
  /** Set when the client is counted against maxConnectionsPerClient. */
  clientKey: string | null = null;
  firstFin: 'client-fin' | 'backend-fin' | null = null;
  /** The backend socket's private read buffer while its reads come in big (see onBackendRead). */
  readBuffer: Buffer | null = null;
  endReason: EndReason | null = null;
  detail: string | undefined = undefined;
  readonly idleTimeoutMs: number;

  constructor(
    readonly client: Tagged,
    readonly route: Route,
    readonly header: Buffer | null,
    readonly origin: ConnectionOrigin,
    readonly uniqueId: Buffer | null,
    readonly options: ConnectionOptions,
  ) {
    this.lastActivity = options.sweeper.now;
    this.idleTimeoutMs = route.endpoint.idleTimeoutMs ?? 0;
  }

  destroy(reason?: EndReason): void {
    if (reason !== undefined) this.endReason ??= reason;
    this.client.destroy();
    this.backendSocket?.destroy();
  }

  sweep(now: number): void {
    if (!this.connected) return; // the connect timeout covers this phase
    // Stamps come from a clock up to one tick stale: add a tick so nothing closes early.
    const idle = now - this.lastActivity - this.options.sweeper.tickMs;
    if (this.clientEnded !== this.backendEnded && idle >= this.options.finTimeoutMs) {
      this.destroy('fin-timeout');
    } else if (this.idleTimeoutMs > 0 && idle >= this.idleTimeoutMs) {
      this.route.stats.idleTimeouts++;
      this.destroy('idle-timeout');
    }
  }

  connect(backend: Backend): void {
    this.backend = backend;
    backend.acquire(this);
    const socket: Tagged = net.connect({
      host: backend.address,
      port: backend.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: nextReadBuffer, callback: onBackendRead },
    });
    socket[CONNECTION] = this;
    this.backendSocket = socket;
    socket.setTimeout(this.options.connectTimeoutMs);
    socket.on('connect', onBackendConnect);
    socket.on('end', onBackendEnd);
    socket.on('drain', onBackendDrain);
    socket.on('timeout', onBackendTimeout);
    socket.on('error', onError);
    socket.on('close', onBackendClose);
    // Corked until connected: the header and every client byte that arrives meanwhile leave in one
    // writev, header first. Without client bytes by then, the header goes alone (server-first protocols).
    socket.cork();
    let writable = true;
    if (this.header !== null) writable = socket.write(this.header);
    for (const chunk of this.replay ?? []) writable = socket.write(chunk);
    if (this.clientEnded) socket.end();
    if (writable && this.client.isPaused()) this.client.resume();
  }

  /** The backend did not accept: try the next one, or close the client when none is left. */
  failover(code: string): void {
    const socket = this.backendSocket!;
    const backend = this.backend!;
    const now = this.options.sweeper.now;
    socket[CONNECTION] = undefined;
    socket.destroy();
    const ejected = backend.connectFailed(now, this.options.ejection);
    this.route.stats.connectErrors++;
    backend.release(this);
    const tried = (this.tried ??= []);
    tried.push(backend);
    const next = tried.length < this.options.maxConnectAttempts ? this.route.balancer.pick(tried, now) : undefined;
    const log = this.options.log;
    if (ejected) log.warn({ endpoint: this.route.endpoint.id, backend: backend.id, code, untilMs: backend.ejectedUntil - now }, 'backend ejected');
    else log.debug({ endpoint: this.route.endpoint.id, backend: backend.id, code, retry: next?.id ?? null }, 'backend connect failed');
    if (next !== undefined) {
      this.route.stats.retries++;
      this.connect(next);
      return;
    }
    this.backendSocket = null;
    this.backend = null;
    this.endReason ??= 'connect-failed';
    this.detail = code;
    this.open--;
    this.client.destroy();
  }

  /** Both FINs seen: close each side once what we still owe it is flushed (saves a shutdown). */
  finish(): void {
    closeWhenFlushed(this.client);
    if (this.backendSocket !== null) closeWhenFlushed(this.backendSocket);
  }

  socketClosed(other: Socket | null): void {
    this.open--;
    if (this.open === 0) {
      this.finished();
      return;
    }
    // After both FINs the other side is only flushing what it owes; otherwise it is cut.
    if (other !== null && !(this.clientEnded && this.backendEnded)) other.destroy();
  }

  private finished(): void {
    const backend = this.backend;
    backend?.release(this);
    this.backend = null;
    const stats = this.route.stats;
    stats.active--;
    if (this.clientKey !== null) {
      const left = (stats.perClient.get(this.clientKey) ?? 1) - 1;
      if (left <= 0) stats.perClient.delete(this.clientKey);
      else stats.perClient.set(this.clientKey, left);
    }
    this.options.sweeper.delete(this);
    this.options.connectionLog.closed({
      client: this.origin.source,
      listener: this.origin.listener,
      endpoint: this.route.endpoint.id,
      backend: backend?.id ?? this.tried?.at(-1)?.id ?? null,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      startedAt: this.origin.startedAt,
      reason: this.endReason ?? this.firstFin ?? 'error',
      detail: this.detail,
      serverName: this.origin.serverName,
      id: this.uniqueId?.toString('hex'),
    });
  }
}

function onClientData(this: Tagged, chunk: Buffer): void {
  const c = this[CONNECTION];
  if (c === undefined || c.backendSocket === null) return;
  const n = chunk.length;
  c.bytesIn += n;
  c.route.stats.bytesIn += n;
  c.lastActivity = c.options.sweeper.now;
  if (c.replay !== null) c.replay.push(chunk);
  else c.backend!.bytesIn += n;
  if (!c.backendSocket.write(chunk)) this.pause();
}

/**
 * Backend bytes, read into a buffer we own (onread) instead of a fresh 64 KiB one per read. A
 * quiet socket reads into the worker's shared buffer and its bytes are copied out; a socket whose
 * reads come in big (a bulk flow) gets a private buffer, written to the client as is, and stops
 * reading until that write has left (the next read would overwrite it). False stops reading.
 */
function onBackendRead(this: Tagged, n: number, buf: Buffer): boolean {
  const c = this[CONNECTION];
  if (c === undefined) return true;
  c.bytesOut += n;
  c.route.stats.bytesOut += n;
  c.backend!.bytesOut += n;
  c.lastActivity = c.options.sweeper.now;
  const client = c.client;
  // Below the high-water mark a pending write would not bring a 'drain' to resume on: copy those.
  if (n < client.writableHighWaterMark) {
    if (buf !== sharedReadBuffer) releaseReadBuffer(c);
    const copy = Buffer.allocUnsafe(n);
    buf.copy(copy, 0, 0, n);
    return client.write(copy);
  }
  if (buf === sharedReadBuffer) {
    const copy = Buffer.allocUnsafe(n);
    buf.copy(copy, 0, 0, n);
    c.readBuffer ??= takeReadBuffer();
    readNextInto(c.readBuffer);
    return client.write(copy);
  }
  readNextInto(buf);
  client.write(buf.subarray(0, n));
  // Written synchronously when nothing is left queued; otherwise 'drain' resumes us once it is.
  return client.writableLength === 0;
}

/** The private read buffer goes back to the free list; only when nothing queued points into it. */
function releaseReadBuffer(c: Connection): void {
  const buf = c.readBuffer;
  c.readBuffer = null;
  if (buf !== null) giveBackReadBuffer(buf);
}

function onClientDrain(this: Tagged): void {
  this[CONNECTION]?.backendSocket?.resume();
}

function onBackendDrain(this: Tagged): void {
  this[CONNECTION]?.client.resume();
}

function onClientEnd(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.clientEnded = true;
  c.firstFin ??= 'client-fin';
  c.lastActivity = c.options.sweeper.now;
  if (c.backendEnded) c.finish();
  else c.backendSocket?.end();
}

function onBackendEnd(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.backendEnded = true;
  c.firstFin ??= 'backend-fin';
  c.lastActivity = c.options.sweeper.now;
  if (c.clientEnded) c.finish();
  else c.client.end();
}

function onBackendConnect(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.connected = true;
  c.backend!.connectSucceeded();
  // Bytes replayed to this backend count for it once it took them.
  if (c.replay !== null) for (const chunk of c.replay) c.backend!.bytesIn += chunk.length;
  c.replay = null;
  c.tried = null;
  c.lastActivity = c.options.sweeper.now;
  this.setTimeout(0);
  this.uncork();
}

function onBackendTimeout(this: Tagged): void {
  const c = this[CONNECTION];
  if (c !== undefined && !c.connected && !c.client.destroyed) c.failover('ETIMEDOUT');
}

function onError(this: Tagged, err: NodeJS.ErrnoException): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  if (this === c.backendSocket && !c.connected && !c.client.destroyed && RETRYABLE.has(err.code ?? '')) {
    c.failover(err.code ?? 'ERROR');
    return;
  }
  // 'close' follows and cuts the other side.
  if (c.endReason === null) {
    c.endReason = 'error';
    c.detail = `${this === c.client ? 'client' : 'backend'} ${err.code ?? err.message}`;
  }
}

function onClientClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  this[CONNECTION] = undefined;
  c.socketClosed(c.backendSocket);
}

function onBackendClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  this[CONNECTION] = undefined;
  // Bytes still queued toward the client may point into the buffer: then leave it to the GC.
  if (c.client.writableLength === 0) releaseReadBuffer(c);
  else c.readBuffer = null;
  c.socketClosed(c.client);
}

function closeWhenFlushed(socket: Socket): void {
  if (socket.writableLength === 0) socket.destroy();
  else if (!socket.writableEnded) socket.end();
}
