// One proxied TCP connection: a flat object holding both handles (tcp-handle.ts), the owner of
// both handles' events. Until the backend accepts, the client's bytes are kept so a refused or
// timed-out connect can be retried on another backend without losing any of them.

import type { Logger } from 'pino';
import type { Backend, BackendConnection, EjectionPolicy } from './backend.js';
import type { ConnectionLog, EndReason } from './connection-log.js';
import type { IdleSweeper, Sweepable } from './idle-sweeper.js';
import type { PeerAddress } from './peer-address.js';
import { buildProxyHeader, nextUniqueId } from './proxy-header.js';
import type { Route } from './route-table.js';
import {
  adoptHandle,
  closeHandle,
  connectHandle,
  errorName,
  newTcpHandle,
  shutdownHandle,
  writeHandle,
  writevHandle,
  type HandleOwner,
  type TcpHandle,
} from './tcp-handle.js';

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

/** Client bytes held while connecting before the client is asked to wait (it is not read further). */
const REPLAY_LIMIT = 64 * 1024;

/** Proxies `client` to `backend` of `route`; the caller has admitted it and picked the backend. */
export function startConnection(
  client: TcpHandle,
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
  route.stats.active++;
  route.stats.total++;
  if (route.endpoint.maxConnectionsPerClient !== undefined) {
    const perClient = route.stats.perClient;
    connection.clientKey = origin.source.address;
    perClient.set(connection.clientKey, (perClient.get(connection.clientKey) ?? 0) + 1);
  }
  if (origin.initial !== null) {
    connection.replay!.push(origin.initial);
    connection.replayBytes = origin.initial.length;
    connection.bytesIn += origin.initial.length;
    route.stats.bytesIn += origin.initial.length;
  }
  options.sweeper.add(connection);
  adoptHandle(client, connection);
  connection.connect(backend);
  client.readStart();
  return connection;
}

export class Connection implements BackendConnection, Sweepable, HandleOwner {
  /** Null once closed. */
  client: TcpHandle | null;
  /** The handle connected or connecting to `backend`; null before, between attempts and once closed. */
  backendHandle: TcpHandle | null = null;
  backend: Backend | null = null;
  /** Client bytes read while the backend connect is in flight; null once connected. */
  replay: Buffer[] | null = [];
  replayBytes = 0;
  tried: Backend[] | null = null;
  connected = false;
  clientEnded = false;
  backendEnded = false;
  /** Both FINs seen: each handle closes once what it still has queued is written. */
  finishing = false;
  bytesIn = 0;
  bytesOut = 0;
  /** The sweeper's clock at the last byte or FIN. */
  lastActivity: number;
  connectDeadline = 0;
  /** Set when the client is counted against maxConnectionsPerClient. */
  clientKey: string | null = null;
  firstFin: 'client-fin' | 'backend-fin' | null = null;
  endReason: EndReason | null = null;
  detail: string | undefined = undefined;
  done = false;
  readonly idleTimeoutMs: number;

  constructor(
    client: TcpHandle,
    readonly route: Route,
    readonly header: Buffer | null,
    readonly origin: ConnectionOrigin,
    readonly uniqueId: Buffer | null,
    readonly options: ConnectionOptions,
  ) {
    this.client = client;
    this.lastActivity = options.sweeper.now;
    this.idleTimeoutMs = route.endpoint.idleTimeoutMs ?? 0;
  }

  /** Once connected, client and backend bytes are written on at once (see HandleOwner.onData). */
  get borrows(): boolean {
    return this.replay === null;
  }

  /** Cuts both sides now. */
  destroy(reason?: EndReason): void {
    if (reason !== undefined) this.endReason ??= reason;
    this.closeClient();
    this.closeBackend();
    this.finished();
  }

  sweep(now: number): void {
    if (!this.connected) {
      if (this.backendHandle !== null && now >= this.connectDeadline) this.failover('ETIMEDOUT');
      return;
    }
    // Stamps come from a clock up to one tick stale: add a tick so nothing closes early.
    const idle = now - this.lastActivity - this.options.sweeper.tickMs;
    // One FIN seen, or both and a side still not taking the bytes it is owed.
    if ((this.clientEnded !== this.backendEnded || this.finishing) && idle >= this.options.finTimeoutMs) {
      this.destroy('fin-timeout');
    } else if (this.idleTimeoutMs > 0 && idle >= this.idleTimeoutMs) {
      this.route.stats.idleTimeouts++;
      this.destroy('idle-timeout');
    }
  }

  connect(backend: Backend): void {
    this.backend = backend;
    backend.acquire(this);
    const handle = newTcpHandle(this);
    this.backendHandle = handle;
    const sweeper = this.options.sweeper;
    // The sweeper's clock may be a tick old: add one so the timeout is never cut short.
    this.connectDeadline = sweeper.now + this.options.connectTimeoutMs + sweeper.tickMs;
    connectHandle(handle, backend.address, backend.port, onBackendConnect);
  }

  connected_(): void {
    const handle = this.backendHandle!;
    const backend = this.backend!;
    this.connected = true;
    backend.connectSucceeded();
    this.lastActivity = this.options.sweeper.now;
    // The header and every client byte read meanwhile leave in one writev, header first. Without
    // client bytes by then, the header goes alone (server-first protocols).
    const replay = this.replay!;
    for (const chunk of replay) backend.bytesIn += chunk.length;
    const chunks = this.header === null ? replay : [this.header, ...replay];
    this.replay = null;
    this.tried = null;
    const flushed = chunks.length === 0 || writevHandle(handle, chunks);
    if (this.clientEnded) shutdownHandle(handle);
    handle.readStart();
    const client = this.client;
    if (flushed && client !== null && client.paused === true) {
      client.paused = false;
      client.readStart();
    }
  }

  /** The backend did not accept: try the next one, or close the client when none is left. */
  failover(code: string): void {
    const backend = this.backend!;
    const now = this.options.sweeper.now;
    this.closeBackend();
    const ejected = backend.connectFailed(now, this.options.ejection);
    this.route.stats.connectErrors++;
    backend.release(this);
    this.backend = null;
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
    this.endReason ??= 'connect-failed';
    this.detail = code;
    this.destroy();
  }

  onData(handle: TcpHandle, buf: Buffer): void {
    const n = buf.length;
    this.lastActivity = this.options.sweeper.now;
    const stats = this.route.stats;
    if (handle === this.client) {
      this.bytesIn += n;
      stats.bytesIn += n;
      const replay = this.replay;
      if (replay !== null) {
        replay.push(buf);
        this.replayBytes += n;
        if (this.replayBytes >= REPLAY_LIMIT) pause(handle);
        return;
      }
      this.backend!.bytesIn += n;
      if (!writeHandle(this.backendHandle!, buf)) pause(handle);
    } else {
      this.bytesOut += n;
      stats.bytesOut += n;
      this.backend!.bytesOut += n;
      if (!writeHandle(this.client!, buf)) pause(handle);
    }
  }

  onEnd(handle: TcpHandle): void {
    this.lastActivity = this.options.sweeper.now;
    if (handle === this.client) {
      this.clientEnded = true;
      this.firstFin ??= 'client-fin';
      if (this.backendEnded) this.finish();
      else if (this.connected) shutdownHandle(this.backendHandle!);
    } else {
      this.backendEnded = true;
      this.firstFin ??= 'backend-fin';
      if (this.clientEnded) this.finish();
      else shutdownHandle(this.client!);
    }
  }

  onError(handle: TcpHandle, code: string): void {
    if (this.endReason === null) {
      this.endReason = 'error';
      this.detail = `${handle === this.client ? 'client' : 'backend'} ${code}`;
    }
    this.destroy();
  }

  /** Everything queued toward `handle` is written: read again from the other side, or close. */
  onFlushed(handle: TcpHandle): void {
    // Bytes moving toward a slow reader count as activity (the FIN timeout must not cut them).
    this.lastActivity = this.options.sweeper.now;
    if (this.finishing) {
      if (handle === this.client) this.closeClient();
      else this.closeBackend();
      if (this.client === null && this.backendHandle === null) this.finished();
      return;
    }
    const other = handle === this.client ? this.backendHandle : this.client;
    if (other !== null && other.paused === true) {
      other.paused = false;
      other.readStart();
    }
  }

  /** Both FINs seen: close each side once what we still owe it is written (saves a shutdown). */
  private finish(): void {
    this.finishing = true;
    if (this.client !== null && this.client.writeQueueSize === 0) this.closeClient();
    if (this.backendHandle !== null && this.backendHandle.writeQueueSize === 0) this.closeBackend();
    if (this.client === null && this.backendHandle === null) this.finished();
  }

  private closeClient(): void {
    const client = this.client;
    if (client === null) return;
    this.client = null;
    // The backend may still be writing bytes that sit in the client's read buffer.
    closeHandle(client, this.backendHandle !== null && this.backendHandle.writeQueueSize > 0);
  }

  private closeBackend(): void {
    const handle = this.backendHandle;
    if (handle === null) return;
    this.backendHandle = null;
    closeHandle(handle, this.client !== null && this.client.writeQueueSize > 0);
  }

  private finished(): void {
    if (this.done) return;
    this.done = true;
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
    const reason = this.endReason ?? this.firstFin ?? 'error';
    const log = this.options.connectionLog;
    if (!log.wants(reason)) return;
    log.closed({
      client: this.origin.source,
      listener: this.origin.listener,
      endpoint: this.route.endpoint.id,
      backend: backend?.id ?? this.tried?.at(-1)?.id ?? null,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      startedAt: this.origin.startedAt,
      reason,
      detail: this.detail,
      serverName: this.origin.serverName,
      id: this.uniqueId?.toString('hex'),
    });
  }
}

/** Stops reading `handle` until what it sent the other side is written (onFlushed resumes it). */
function pause(handle: TcpHandle): void {
  if (handle.paused === true) return;
  handle.paused = true;
  handle.readStop();
}

function onBackendConnect(handle: TcpHandle, status: number): void {
  const c = handle.owner as Connection | undefined;
  if (c === undefined || c.backendHandle !== handle) return; // closed meanwhile (timeout, client gone)
  if (status === 0) {
    c.connected_();
    return;
  }
  const code = errorName(status);
  if (RETRYABLE.has(code)) {
    c.failover(code);
    return;
  }
  // Not the backend's fault (EADDRNOTAVAIL: no local port left ...): counted, not held against it.
  c.route.stats.connectErrors++;
  c.endReason ??= 'error';
  c.detail = `backend ${code}`;
  c.destroy();
}
