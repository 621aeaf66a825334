// One proxied TCP connection: a flat object holding both handles (tcp-io/) and owning both
// handles' events. Its life cycle is its own: connecting (client bytes held, so a refused or
// timed-out connect can be retried on another backend without losing any) → greeting (connected;
// the PROXY header waits for the client's first bytes until the end of this event-loop turn) →
// open (bytes spliced both ways) → finishing (both FINs seen) → done. For `earlyFailureMs` after
// connecting, and until the backend's first byte, a copy of what the client sent is kept: a
// backend that closes or resets before saying anything (something that accepts and closes, such
// as docker-proxy in front of a port nothing listens on) is a failure, and the connection fails
// over with the PROXY header and those bytes replayed, as if the connect had been refused.

import type { Logger } from 'pino';
import type { Backend, BackendConnection, EjectionPolicy } from './backend.js';
import type { ConnectionLog, EndReason } from './connection-log.js';
import type { FdBudget } from './fd-budget.js';
import type { IdleSweeper, Sweepable } from './idle-sweeper.js';
import type { PeerAddress } from './peer-address.js';
import { buildProxyHeader, nextUniqueId } from './proxy-header.js';
import { awaitEndOfTurn, type TurnWaiter } from './end-of-turn.js';
import type { Route } from './route-table.js';
import type { HandleOwner, TcpHandle, TcpIo } from './tcp-io/tcp-io.js';

/** Shared by every connection of one edge. */
export interface ConnectionOptions {
  io: TcpIo;
  connectTimeoutMs: number;
  /** Backends tried per connection, each at most once. */
  maxConnectAttempts: number;
  /** Inactivity allowed once one side has sent its FIN. */
  finTimeoutMs: number;
  ejection: EjectionPolicy;
  /** How long after connecting a close or reset with no byte from the backend counts as its failure (0: never). */
  earlyFailureMs: number;
  sweeper: IdleSweeper;
  connectionLog: ConnectionLog;
  log: Logger;
  budget: FdBudget;
  /** A backend was just ejected (its state changed: the edge reports it). */
  onEjected(backend: Backend): void;
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
  /** Encoded PROXY v2 TLVs about the TLS the edge terminated (tls/tls-tlvs.ts), sent on v2. */
  tlsTlvs?: Buffer | null;
  listener: string;
  startedAt: number;
}

type Phase = 'connecting' | 'greeting' | 'open' | 'finishing' | 'done';

// Connect errors that mean "this backend did not take the connection": safe to try another one.
// ECONNRESET: it accepted and reset before the connect was seen to complete (nothing was sent).
const RETRYABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);
/** The code of a backend that sent its FIN before any byte, within the early-failure window. */
export const EARLY_CLOSE = 'EARLYCLOSE';

/** Client bytes held while connecting before the client is asked to wait (it is not read further). */
const REPLAY_LIMIT = 64 * 1024;
/** Held bytes up to this size are copied behind the PROXY header into one buffer; more go by writev. */
const COPY_BEHIND_HEADER = 4 * 1024;

export class Connection implements BackendConnection, Sweepable, HandleOwner, TurnWaiter {
  private phase: Phase = 'connecting';
  /** Null once closed. */
  private client: TcpHandle | null;
  /** The handle connected or connecting to `backend`; null before, between attempts and once closed. */
  private backendHandle: TcpHandle | null = null;
  private backend: Backend | null = null;
  /** Client bytes not yet sent to a backend: the first chunk, then any later ones. */
  private held: Buffer | null = null;
  private heldMore: Buffer[] | null = null;
  private heldBytes = 0;
  /** Backends that failed this connection; kept until the current one proves itself. */
  private tried: Backend[] | null = null;
  /** Copies of the client bytes sent to the current backend while it may still fail early; null once it cannot. */
  private replay: Buffer[] | null = null;
  private replayBytes = 0;
  /** The sweeper's clock at which an early failure stops being one. */
  private earlyUntil = 0;
  private clientEnded = false;
  private backendEnded = false;
  private bytesIn = 0;
  private bytesOut = 0;
  /** The sweeper's clock at the last byte or FIN. */
  private lastActivity: number;
  private connectDeadline = 0;
  /** Set when the client is counted against maxConnectionsPerClient. */
  private readonly clientKey: string | null = null;
  private readonly uniqueId: Buffer | null;
  private readonly idleTimeoutMs: number;
  private firstFin: 'client-fin' | 'backend-fin' | null = null;
  private endReason: EndReason | null = null;
  private detail: string | undefined = undefined;

  /** Proxies `client` to `backend` of `route`; the caller has admitted it and picked the backend. */
  static start(client: TcpHandle, route: Route, backend: Backend, origin: ConnectionOrigin, options: ConnectionOptions): Connection {
    const connection = new Connection(client, route, origin, options);
    options.sweeper.add(connection);
    client.owner = connection;
    connection.connect(backend);
    client.readStart();
    return connection;
  }

  private constructor(
    client: TcpHandle,
    private readonly route: Route,
    private readonly origin: ConnectionOrigin,
    private readonly options: ConnectionOptions,
  ) {
    this.client = client;
    this.lastActivity = options.sweeper.now;
    this.idleTimeoutMs = route.endpoint.idleTimeoutMs ?? 0;
    this.uniqueId = route.tlvUniqueId ? nextUniqueId() : null;
    const stats = route.stats;
    stats.active++;
    stats.total++;
    if (route.endpoint.maxConnectionsPerClient !== undefined) {
      this.clientKey = origin.source.address;
      stats.perClient.set(this.clientKey, (stats.perClient.get(this.clientKey) ?? 0) + 1);
    }
    if (origin.initial !== null) this.hold(origin.initial);
  }

  /** Once open, client and backend bytes are written on at once (see HandleOwner.onData), unless kept for a replay. */
  get borrows(): boolean {
    return (this.phase === 'open' || this.phase === 'finishing') && this.replay === null;
  }

  /** Cuts both sides now. */
  destroy(reason?: EndReason): void {
    if (reason !== undefined) this.endReason ??= reason;
    this.closeClient();
    this.closeBackend();
    this.finished();
  }

  sweep(now: number): void {
    if (this.phase === 'connecting') {
      if (this.backendHandle !== null && now >= this.connectDeadline) this.failover('ETIMEDOUT');
      return;
    }
    if (this.replay !== null && now >= this.earlyUntil) this.proven();
    // Stamps come from a clock up to one tick stale: add a tick so nothing closes early.
    const idle = now - this.lastActivity - this.options.sweeper.tickMs;
    // One FIN seen, or both and a side still not taking the bytes it is owed.
    if ((this.clientEnded !== this.backendEnded || this.phase === 'finishing') && idle >= this.options.finTimeoutMs) {
      this.destroy('fin-timeout');
    } else if (this.idleTimeoutMs > 0 && idle >= this.idleTimeoutMs) {
      this.route.stats.idleTimeouts++;
      this.destroy('idle-timeout');
    }
  }

  /** The backend connect ended: `error` null when it succeeded. */
  connectDone(handle: TcpHandle, error: string | null): void {
    if (handle !== this.backendHandle) return; // an attempt given up on (timeout, client gone)
    if (error === null) {
      this.connected(handle);
    } else if (RETRYABLE.has(error)) {
      this.failover(error);
    } else {
      // Not the backend's fault (EADDRNOTAVAIL: no local port left, EMFILE ...): counted, not held against it.
      this.route.stats.connectErrors++;
      if (error === 'EMFILE' || error === 'ENFILE') this.options.budget.noteError(error, 'connect');
      this.fail('error', `backend ${error}`);
    }
  }

  /** The greeting turn is over and the client sent nothing: the PROXY header goes alone. */
  turnEnded(): void {
    if (this.phase === 'greeting') this.sendHeld();
  }

  onData(handle: TcpHandle, buf: Buffer): void {
    const n = buf.length;
    this.lastActivity = this.options.sweeper.now;
    const stats = this.route.stats;
    if (handle === this.client) {
      this.bytesIn += n;
      stats.bytesIn += n;
      if (this.phase === 'connecting' || this.phase === 'greeting') {
        this.hold(buf);
        if (this.phase === 'greeting') this.sendHeld();
        else if (this.heldBytes >= REPLAY_LIMIT) handle.pause();
        return;
      }
      this.backend!.bytesIn += n;
      if (this.replay !== null) this.keepForReplay(buf);
      if (!this.backendHandle!.write(buf)) handle.pause();
    } else {
      if (this.replay !== null) this.proven();
      this.bytesOut += n;
      stats.bytesOut += n;
      this.backend!.bytesOut += n;
      if (!this.client!.write(buf)) handle.pause();
    }
  }

  onEnd(handle: TcpHandle): void {
    this.lastActivity = this.options.sweeper.now;
    if (handle === this.client) {
      this.clientEnded = true;
      this.firstFin ??= 'client-fin';
      if (this.backendEnded) this.finish();
      else if (this.phase === 'greeting') this.sendHeld();
      else if (this.phase === 'open') this.backendHandle!.shutdown();
    } else {
      // Closed before saying anything while the client still waits: it did not serve us.
      if (this.replay !== null && !this.clientEnded) return this.failEarly(EARLY_CLOSE);
      this.backendEnded = true;
      this.firstFin ??= 'backend-fin';
      if (this.clientEnded) this.finish();
      else this.client!.shutdown();
    }
  }

  onError(handle: TcpHandle, code: string): void {
    if (handle !== this.client && this.replay !== null) return this.failEarly(code);
    this.fail('error', `${handle === this.client ? 'client' : 'backend'} ${code}`);
  }

  /** Everything queued toward `handle` is written: read again from the other side, or close. */
  onFlushed(handle: TcpHandle): void {
    // Bytes moving toward a slow reader count as activity (the FIN timeout must not cut them).
    this.lastActivity = this.options.sweeper.now;
    if (this.phase === 'finishing') {
      if (handle === this.client) this.closeClient();
      else this.closeBackend();
      if (this.client === null && this.backendHandle === null) this.finished();
      return;
    }
    const other = handle === this.client ? this.backendHandle : this.client;
    if (other !== null && other.paused) other.readStart();
  }

  private connect(backend: Backend): void {
    this.backend = backend;
    backend.acquire(this);
    const sweeper = this.options.sweeper;
    // The sweeper's clock may be a tick old: add one so the timeout is never cut short.
    this.connectDeadline = sweeper.now + this.options.connectTimeoutMs + sweeper.tickMs;
    this.options.budget.sockets++;
    this.backendHandle = this.options.io.connect(this, backend.address, backend.port, onConnectDone);
  }

  private connected(handle: TcpHandle): void {
    const backend = this.backend!;
    backend.connected();
    const sweeper = this.options.sweeper;
    this.lastActivity = sweeper.now;
    if (this.options.earlyFailureMs > 0) {
      this.replay = [];
      this.replayBytes = 0;
      // The clock may be a tick old: a tick more, so the window is never cut short.
      this.earlyUntil = sweeper.now + this.options.earlyFailureMs + sweeper.tickMs;
    } else {
      this.proven();
    }
    handle.readStart();
    if (this.route.endpoint.proxyProtocol !== 'none' && this.held === null && !this.clientEnded) {
      // Wait for the client's first bytes until the end of this loop turn (they often arrive in
      // the same poll), so header and bytes leave in one write; else the header goes alone, in
      // time for server-first protocols (SMTP, MySQL).
      this.phase = 'greeting';
      awaitEndOfTurn(this);
      return;
    }
    this.sendHeld();
  }

  /** Sends the PROXY header and every client byte held, in one write, header first; then open. */
  private sendHeld(): void {
    const handle = this.backendHandle!;
    const backend = this.backend!;
    const first = this.held;
    const more = this.heldMore;
    this.phase = 'open';
    this.held = null;
    this.heldMore = null;
    backend.bytesIn += this.heldBytes;
    if (this.replay !== null) {
      if (first !== null) this.keepForReplay(first);
      if (more !== null) for (const chunk of more) this.keepForReplay(chunk);
    }
    this.heldBytes = 0;
    const proxied = this.route.endpoint.proxyProtocol !== 'none';
    let flushed: boolean;
    if (more === null && (!proxied || first === null || first.length <= COPY_BEHIND_HEADER)) {
      // The common case: one buffer, the header with the client's first bytes copied in behind it.
      const out = proxied ? this.header(first) : first;
      flushed = out === null || handle.write(out);
    } else {
      const chunks: Buffer[] = [];
      const header = this.header(null);
      if (header !== null) chunks.push(header);
      if (first !== null) chunks.push(first);
      if (more !== null) chunks.push(...more);
      flushed = chunks.length === 0 || handle.writev(chunks);
    }
    if (this.clientEnded) handle.shutdown();
    const client = this.client;
    if (flushed && client !== null && client.paused) client.readStart();
  }

  /** The outbound PROXY header (null for none), with `payload` copied in behind it. */
  private header(payload: Buffer | null): Buffer | null {
    const route = this.route;
    const origin = this.origin;
    const extra = origin.tlsTlvs ?? null;
    const withTlvs = route.tlvAuthority || this.uniqueId !== null || route.tlvCrc32c || extra !== null;
    return buildProxyHeader(
      route.endpoint.proxyProtocol,
      origin.source,
      origin.destination,
      withTlvs ? { authority: route.tlvAuthority ? origin.serverName : null, uniqueId: this.uniqueId, crc32c: route.tlvCrc32c, extra } : undefined,
      payload,
    );
  }

  /** The backend did not accept: try the next one, or close the client when none is left. */
  private failover(code: string): void {
    const backend = this.backend!;
    const now = this.options.sweeper.now;
    this.closeBackend();
    const ejected = backend.connectFailed(now, this.options.ejection, code);
    this.route.stats.connectErrors++;
    backend.release(this);
    this.backend = null;
    const tried = (this.tried ??= []);
    tried.push(backend);
    const next = tried.length < this.options.maxConnectAttempts ? this.route.balancer.pick(tried, now) : undefined;
    const log = this.options.log;
    if (ejected) {
      log.warn({ endpoint: this.route.endpoint.id, name: this.route.endpoint.name, backend: backend.id, code, untilMs: backend.ejectedUntil - now }, 'backend ejected');
      this.options.onEjected(backend);
    } else log.debug({ endpoint: this.route.endpoint.id, backend: backend.id, code, retry: next?.id ?? null }, 'backend connect failed');
    if (next !== undefined) {
      this.route.stats.retries++;
      this.connect(next);
      return;
    }
    this.fail('connect-failed', code);
  }

  /**
   * The backend closed or reset before its first byte, within the window: a failure like a refused
   * connect. What it was sent goes first to the next backend, then anything still held.
   */
  private failEarly(code: string): void {
    const sent = this.replay!;
    const first = this.held;
    const more = this.heldMore;
    this.replay = null;
    this.replayBytes = 0;
    this.held = null;
    this.heldMore = null;
    this.heldBytes = 0;
    for (const chunk of sent) this.hold(chunk);
    if (first !== null) this.hold(first);
    if (more !== null) for (const chunk of more) this.hold(chunk);
    this.phase = 'connecting';
    this.failover(code);
  }

  /** The current backend served (a byte, or the window passed with the connection open). */
  private proven(): void {
    this.replay = null;
    this.replayBytes = 0;
    this.tried = null;
    this.backend?.proven();
  }

  /** Keeps a copy of `buf` for a replay; past the replay limit the connection cannot fail over any more. */
  private keepForReplay(buf: Buffer): void {
    this.replayBytes += buf.length;
    if (this.replayBytes > REPLAY_LIMIT) {
      this.replay = null;
      this.replayBytes = 0;
      return;
    }
    this.replay!.push(buf);
  }

  private hold(buf: Buffer): void {
    if (this.held === null) this.held = buf;
    else (this.heldMore ??= []).push(buf);
    this.heldBytes += buf.length;
  }

  /** Ends the connection for `reason` (the first reason given is the one logged). */
  private fail(reason: EndReason, detail: string): void {
    if (this.endReason === null) {
      this.endReason = reason;
      this.detail = detail;
    }
    this.destroy();
  }

  /** Both FINs seen: close each side once what we still owe it is written (saves a shutdown). */
  private finish(): void {
    this.phase = 'finishing';
    if (this.client !== null && this.client.writeQueueSize === 0) this.closeClient();
    if (this.backendHandle !== null && this.backendHandle.writeQueueSize === 0) this.closeBackend();
    if (this.client === null && this.backendHandle === null) this.finished();
  }

  private closeClient(): void {
    const client = this.client;
    if (client === null) return;
    this.client = null;
    // The backend may still be writing bytes that sit in the client's read buffer.
    client.close(this.backendHandle !== null && this.backendHandle.writeQueueSize > 0);
  }

  private closeBackend(): void {
    const handle = this.backendHandle;
    if (handle === null) return;
    this.backendHandle = null;
    this.options.budget.sockets--;
    handle.close(this.client !== null && this.client.writeQueueSize > 0);
  }

  private finished(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    this.held = null;
    this.heldMore = null;
    this.replay = null;
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

function onConnectDone(handle: TcpHandle, error: string | null): void {
  // Unowned: the connection closed this handle meanwhile.
  (handle.owner as Connection | undefined)?.connectDone(handle, error);
}
