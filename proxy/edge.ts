// The edge data plane: applies versioned snapshots (validate whole, bind new listeners, swap the
// route table, stop removed listeners, drain removed backends, persist) and proxies connections.
// Only an invalid snapshot is refused whole: a listener that cannot bind fails its endpoint alone
// (listener-set.ts retries it) and everything else applies.

import type { Logger } from 'pino';
import { Admission, type AdmissionOptions } from './admission.js';
import { DEFAULT_EJECTION, type Backend } from './backend.js';
import { ConnectionLog } from './connection-log.js';
import type { EdgeConfig } from './edge-config.js';
import { backendMetrics, type EdgeMetrics, type EndpointStats } from './edge-metrics.js';
import { EdgeStateFile } from './edge-state-file.js';
import { endpointStates, type EndpointState } from './endpoint-state.js';
import { FdBudget } from './fd-budget.js';
import { IdleSweeper } from './idle-sweeper.js';
import type { Listener, ConnectionSink } from './listener.js';
import { ListenerSet } from './listener-set.js';
import { PROXY_HEADER_TIMEOUT_MS } from './proxy-header-reader.js';
import { buildRouteTable, RouteTable } from './route-table.js';
import type { TcpHandle, TcpIo } from './tcp-io/tcp-io.js';
import { parseEdgeConfig } from './validate-edge-config.js';
import { setTicketKeys } from './tls/certificate-picker.js';
import { createTicketKeys, type TicketKeys } from './tls/ticket-keys.js';

export interface EdgeOptions {
  log: Logger;
  /** How connections are read and written (tcp-io/select-tcp-io.ts picks one). */
  io: TcpIo;
  /** Where the last good snapshot is kept; unset: nothing is written. */
  stateFile?: string;
  /** How long removed backends' connections may run on (default 30 s). */
  drainTimeoutMs?: number;
  /** Connect timeout per backend attempt (default 5 s). */
  connectTimeoutMs?: number;
  /** Backends tried per client connection (default 3). */
  maxConnectAttempts?: number;
  /** How long a trusted proxy may take to send its PROXY header (default 5 s, at least 3 s). */
  proxyHeaderTimeoutMs?: number;
  /** How long a client may take to send its TLS ClientHello on an SNI port (default 5 s). */
  helloTimeoutMs?: number;
  /** Inactivity allowed once one side has sent its FIN (default 30 s). */
  finTimeoutMs?: number;
  /** Passive ejection: consecutive connect failures before a backend is skipped (default 3). */
  ejectAfterFailures?: number;
  /** First ejection lasts this long, doubling per repeat (default 1 s)... */
  ejectBaseMs?: number;
  /** ...up to this (default 30 s). */
  ejectMaxMs?: number;
  /** A close or reset with no byte from the backend this soon after connecting fails over (default 1 s; 0: off). */
  earlyFailureMs?: number;
  /** Share of clean closes given a log line, 0..1 (default 0.01); errors and refusals always are. */
  connectionLogSampleRate?: number;
  /** An endpoint, listener or backend changed state on its own (a bind retry, an ejection): report it. */
  onStateChange?: () => void;
  /** First bind retry after this long, doubling up to bindRetryMaxMs (defaults 1 s, 30 s). */
  bindRetryBaseMs?: number;
  bindRetryMaxMs?: number;
  /** Descriptor limit and reserve (fd-budget.ts); default: this process's soft limit, max(32, 5 %). */
  fdLimit?: number | null;
  fdReserve?: number;
  /** Secret the TLS session ticket keys derive from; the same in every worker of an edge (default: random). */
  ticketSeed?: Buffer;
  /** How often the ticket key changes (default 1 h). */
  ticketRotationMs?: number;
  /** For tests only: the sweeper's tick (default 1000 ms) and no 3 s floor on proxyHeaderTimeoutMs. */
  testTimers?: { sweepIntervalMs: number };
}

export type { EndpointState } from './endpoint-state.js';

export type ApplyResult =
  /** Applied; `endpoints` says which serve and which failed to bind (and are being retried). */
  | { ok: true; applied: true; version: number; endpoints: EndpointState[] }
  /** A snapshot not newer than the one served: nothing changed. */
  | { ok: true; applied: false; version: number; reason: string }
  | { ok: false; reason: string };

export interface EdgeStatus {
  version: number | null;
  /** The TCP I/O this edge runs on. */
  io: TcpIo['mode'];
  listeners: { address: string; port: number; endpoint: string }[];
  backends: {
    endpoint: string;
    id: string;
    address: string;
    port: number;
    active: number;
    draining: boolean;
    connectFailures: number;
    /** Skipped by the balancer after consecutive failures, until a backoff runs out. */
    ejected: boolean;
    /** The last failure's code (ECONNREFUSED, ETIMEDOUT, ECONNRESET, EARLYCLOSE ...). */
    lastError?: string;
  }[];
  /** Per endpoint of the served snapshot: serving (every listener bound) or failed. */
  endpoints: EndpointState[];
}

export interface Edge {
  /** Applies a valid snapshot (an endpoint whose listener cannot bind fails alone); refuses an invalid one whole. */
  apply(config: EdgeConfig): Promise<ApplyResult>;
  /** Applies the snapshot stored in the state file. */
  loadState(): Promise<ApplyResult>;
  status(): EdgeStatus;
  /** Counters per endpoint, backend and listener: plain integers, JSON-able (docs/edge.md). */
  metrics(): EdgeMetrics;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

export function createEdge(options: EdgeOptions): Edge {
  return new EdgeDataPlane(options);
}

class EdgeDataPlane implements Edge, ConnectionSink {
  private table = RouteTable.empty;
  private readonly listeners: ListenerSet;
  private readonly budget: FdBudget;
  private readonly draining = new Set<Backend>();
  /** Timers that report an ejected backend coming back. */
  private readonly restoreTimers = new Set<NodeJS.Timeout>();
  private readonly onStateChange: () => void;
  private readonly log: Logger;
  private readonly io: TcpIo;
  private readonly stateFile: EdgeStateFile | undefined;
  private readonly drainTimeoutMs: number;
  private readonly sweeper: IdleSweeper;
  private readonly admission: Admission;
  /** Stats of removed endpoints whose connections still run. */
  private readonly retired = new Set<EndpointStats>();
  /** Applies run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private readonly tickets: TicketKeys;
  private ticketTimer: NodeJS.Timeout | undefined;

  constructor(options: EdgeOptions) {
    this.log = options.log;
    this.tickets = createTicketKeys(options.ticketSeed, options.ticketRotationMs);
    this.scheduleTicketRotation();
    this.io = options.io;
    this.stateFile = options.stateFile === undefined ? undefined : new EdgeStateFile(options.stateFile);
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    // The sweeper also keeps connect deadlines: tick at a quarter of the connect timeout (≤ 1 s).
    const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
    this.sweeper = new IdleSweeper(options.testTimers?.sweepIntervalMs ?? Math.min(1000, Math.max(10, Math.floor(connectTimeoutMs / 4))));
    const headerTimeout = options.proxyHeaderTimeoutMs ?? PROXY_HEADER_TIMEOUT_MS;
    this.onStateChange = options.onStateChange ?? noop;
    this.budget = new FdBudget({
      log: options.log,
      ...(options.fdLimit === undefined ? {} : { limit: options.fdLimit }),
      ...(options.fdReserve === undefined ? {} : { reserve: options.fdReserve }),
    });
    this.listeners = new ListenerSet({
      sink: this,
      io: options.io,
      log: options.log,
      budget: this.budget,
      schedule: (work) => {
        this.queue = this.queue.then(work).catch((err: unknown) => this.log.error({ err }, 'listener retry failed'));
      },
      onChange: () => this.onStateChange(),
      ...(options.bindRetryBaseMs === undefined ? {} : { retryBaseMs: options.bindRetryBaseMs }),
      ...(options.bindRetryMaxMs === undefined ? {} : { retryMaxMs: options.bindRetryMaxMs }),
    });
    const admission: AdmissionOptions = {
      io: options.io,
      connectTimeoutMs,
      maxConnectAttempts: options.maxConnectAttempts ?? 3,
      finTimeoutMs: options.finTimeoutMs ?? 30_000,
      ejection: {
        failures: options.ejectAfterFailures ?? DEFAULT_EJECTION.failures,
        baseMs: options.ejectBaseMs ?? DEFAULT_EJECTION.baseMs,
        maxMs: options.ejectMaxMs ?? DEFAULT_EJECTION.maxMs,
      },
      earlyFailureMs: options.earlyFailureMs ?? 1000,
      budget: this.budget,
      onEjected: (backend) => this.ejected(backend),
      sweeper: this.sweeper,
      connectionLog: new ConnectionLog(options.log, options.connectionLogSampleRate ?? 0.01),
      log: options.log,
      // The spec asks for at least 3 s, to cover a TCP retransmit of the header.
      proxyHeaderTimeoutMs: options.testTimers === undefined ? Math.max(3000, headerTimeout) : headerTimeout,
      helloTimeoutMs: options.helloTimeoutMs ?? 5_000,
    };
    this.admission = new Admission(admission);
  }

  accept(socket: TcpHandle, listener: Listener): void {
    this.admission.accept(socket, listener, this.table.route(listener.key));
  }

  apply(config: EdgeConfig): Promise<ApplyResult> {
    const run = this.queue.then(() => this.applyNow(config));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async loadState(): Promise<ApplyResult> {
    if (this.stateFile === undefined) return { ok: false, reason: 'no state file is configured' };
    let stored: unknown;
    try {
      stored = await this.stateFile.read();
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
    if (stored === undefined) return { ok: false, reason: `no state file at ${this.stateFile.path}` };
    return this.apply(stored as EdgeConfig);
  }

  status(): EdgeStatus {
    const table = this.table;
    const now = Date.now();
    const listeners = [...this.listeners.bound.values()].map((l) => ({
      address: l.address,
      port: l.port,
      endpoint: table.listeners.get(l.key)?.endpointId ?? '',
    }));
    const backends = [...table.backends.values(), ...this.draining].map((b) => ({
      endpoint: b.endpointId,
      id: b.id,
      address: b.address,
      port: b.port,
      active: b.active,
      draining: b.draining,
      connectFailures: b.connectFailures,
      ejected: b.isEjected(now),
      ...(b.lastError === undefined ? {} : { lastError: b.lastError }),
    }));
    return { version: table.version, io: this.io.mode, listeners, backends, endpoints: endpointStates(table, this.listeners) };
  }

  metrics(): EdgeMetrics {
    const table = this.table;
    const now = Date.now();
    for (const stats of this.retired) if (stats.active === 0) this.retired.delete(stats);
    return {
      version: table.version,
      endpoints: [...[...table.endpoints.values()].map((r) => r.stats), ...this.retired].map((s) => s.toMetrics()),
      backends: [...table.backends.values(), ...this.draining].map((b) => backendMetrics(b, now)),
      listeners: [...this.listeners.bound.values()].map((l) => l.stats.toMetrics()),
      descriptors: this.budget.metrics(),
    };
  }

  close(): Promise<void> {
    this.closing ??= this.queue.then(() => this.shutdown());
    return this.closing;
  }

  private async applyNow(snapshot: EdgeConfig): Promise<ApplyResult> {
    if (this.closing !== undefined) return { ok: false, reason: 'the edge is closed' };
    const check = parseEdgeConfig(snapshot);
    if (!check.ok) return this.reject(`invalid snapshot: ${check.problem}`, snapshot);
    const config = check.config;
    const current = this.table.version;
    if (current !== null && config.version <= current) {
      return { ok: true, applied: false, version: current, reason: `version ${config.version} is not newer than ${current}` };
    }

    let built;
    try {
      built = buildRouteTable(config, this.table, this.tickets.current());
    } catch (err) {
      // A certificate OpenSSL takes alone but not with these settings: refused whole, as invalid.
      return this.reject(`invalid snapshot: ${(err as Error).message}`, config);
    }
    const { table, removed, removedStats } = built;

    // Bind everything new before touching what serves now. A listener that cannot bind fails its
    // endpoint(s) alone: it is retried, and everything else applies.
    const attempt = await this.listeners.open(table.listeners.values());
    if (this.closing !== undefined) {
      this.listeners.abandon(attempt);
      return this.reject('the edge is closed', config);
    }

    this.table = table;
    this.listeners.commit(attempt, table.listeners);
    for (const stats of removedStats) if (stats.active > 0) this.retired.add(stats);
    for (const backend of removed) {
      this.draining.add(backend);
      backend.drain(this.drainTimeoutMs, (drained) => this.draining.delete(drained));
    }
    this.budget.recount(Date.now());
    const endpoints = endpointStates(table, this.listeners);
    const failed = endpoints.filter((e) => e.state === 'failed').map((e) => e.id);
    this.log.info(
      { version: config.version, listenersOpened: attempt.opened.length, listenersFailed: attempt.failed.length, endpointsFailed: failed, backendsDraining: removed.length },
      'edge config applied',
    );

    if (this.stateFile !== undefined && table.config !== null) {
      try {
        await this.stateFile.write(table.config);
      } catch (err) {
        this.log.error({ err, path: this.stateFile.path }, 'edge state file not written');
      }
    }
    return { ok: true, applied: true, version: config.version, endpoints };
  }

  /** Every worker derives the same key for the same window (tls/ticket-keys.ts): swap it in when the window ends. */
  private scheduleTicketRotation(): void {
    const delay = Math.max(10, this.tickets.nextRotation() - Date.now() + 5);
    this.ticketTimer = setTimeout(() => {
      const keys = this.tickets.current();
      for (const route of this.table.endpoints.values()) if (route.tls !== null) setTicketKeys(route.tls.picker.contexts, keys);
      if (this.closing === undefined) this.scheduleTicketRotation();
    }, delay);
    this.ticketTimer.unref();
  }

  /** Reports the ejection now, and the backend's return when its backoff runs out. */
  private ejected(backend: Backend): void {
    this.onStateChange();
    const timer = setTimeout(() => {
      this.restoreTimers.delete(timer);
      this.onStateChange();
    }, Math.max(0, backend.ejectedUntil - Date.now()) + 10);
    timer.unref();
    this.restoreTimers.add(timer);
  }

  private reject(reason: string, config: EdgeConfig): ApplyResult {
    this.log.warn({ version: (config as { version?: unknown } | null)?.version, reason }, 'edge config rejected');
    return { ok: false, reason };
  }

  private async shutdown(): Promise<void> {
    const listeners: Listener[] = this.listeners.closeAll();
    clearTimeout(this.ticketTimer);
    for (const timer of this.restoreTimers) clearTimeout(timer);
    this.restoreTimers.clear();
    for (const backend of [...this.table.backends.values(), ...this.draining]) {
      backend.stopDrainTimer();
      backend.destroyAll('edge-close');
    }
    // Connections still connecting or reading a PROXY header / ClientHello.
    this.sweeper.destroyAll('edge-close');
    this.sweeper.stop();
    this.budget.close();
    await Promise.all(listeners.map((l) => l.closed));
    this.draining.clear();
  }
}

function noop(): void {}
