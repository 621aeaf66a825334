// The edge data plane: applies versioned snapshots (validate whole, bind new listeners, swap the
// route table, stop removed listeners, drain removed backends, persist) and proxies connections.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from './backend.js';
import { startConnection, type ConnectionOptions } from './connection.js';
import type { EdgeConfig } from './edge-config.js';
import { EdgeStateFile } from './edge-state-file.js';
import { Listener, type ConnectionSink } from './listener.js';
import { remoteAddressOf } from './peer-address.js';
import { buildRouteTable, RouteTable } from './route-table.js';
import { validateEdgeConfig } from './validate-edge-config.js';

export interface EdgeOptions {
  log: Logger;
  /** Where the last good snapshot is kept; unset: nothing is written. */
  stateFile?: string;
  /** How long removed backends' connections may run on (default 30 s). */
  drainTimeoutMs?: number;
  /** Connect timeout per backend attempt (default 5 s). */
  connectTimeoutMs?: number;
  /** Backends tried per client connection (default 3). */
  maxConnectAttempts?: number;
}

export type ApplyResult =
  | { ok: true; applied: true; version: number }
  /** A snapshot not newer than the one served: nothing changed. */
  | { ok: true; applied: false; version: number; reason: string }
  | { ok: false; reason: string };

export interface EdgeStatus {
  version: number | null;
  listeners: { address: string; port: number; endpoint: string }[];
  backends: {
    endpoint: string;
    id: string;
    address: string;
    port: number;
    active: number;
    draining: boolean;
    connectFailures: number;
  }[];
}

export interface Edge {
  /** Applies a snapshot whole or not at all; the last good one keeps serving on failure. */
  apply(config: EdgeConfig): Promise<ApplyResult>;
  /** Applies the snapshot stored in the state file. */
  loadState(): Promise<ApplyResult>;
  status(): EdgeStatus;
  /** Stops accepting and closes every connection. */
  close(): Promise<void>;
}

export function createEdge(options: EdgeOptions): Edge {
  return new EdgeDataPlane(options);
}

class EdgeDataPlane implements Edge, ConnectionSink {
  private table = RouteTable.empty;
  private readonly listeners = new Map<string, Listener>();
  private readonly draining = new Set<Backend>();
  private readonly log: Logger;
  private readonly stateFile: EdgeStateFile | undefined;
  private readonly drainTimeoutMs: number;
  private readonly connectionOptions: ConnectionOptions;
  /** Applies run one at a time, in call order. */
  private queue: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;

  constructor(options: EdgeOptions) {
    this.log = options.log;
    this.stateFile = options.stateFile === undefined ? undefined : new EdgeStateFile(options.stateFile);
    this.drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
    this.connectionOptions = {
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      maxConnectAttempts: options.maxConnectAttempts ?? 3,
      log: options.log,
    };
  }

  accept(socket: Socket, listener: Listener): void {
    const route = this.table.route(listener.key);
    if (route === undefined) {
      socket.destroy();
      return;
    }
    startConnection(socket, route, remoteAddressOf(socket), listener.destinationOf(socket), this.connectionOptions);
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
    const listeners = [...this.listeners.values()].map((l) => ({
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
    }));
    return { version: table.version, listeners, backends };
  }

  close(): Promise<void> {
    this.closing ??= this.queue.then(() => this.shutdown());
    return this.closing;
  }

  private async applyNow(config: EdgeConfig): Promise<ApplyResult> {
    if (this.closing !== undefined) return { ok: false, reason: 'the edge is closed' };
    const problem = validateEdgeConfig(config);
    if (problem !== undefined) return this.reject(`invalid snapshot: ${problem}`, config);
    const current = this.table.version;
    if (current !== null && config.version <= current) {
      return { ok: true, applied: false, version: current, reason: `version ${config.version} is not newer than ${current}` };
    }

    const { table, removed } = buildRouteTable(config, this.table);

    // Bind everything new before touching what serves now; one failure undoes this apply's binds.
    const added = [...table.listeners.values()].filter((spec) => !this.listeners.has(spec.key));
    const results = await Promise.allSettled(added.map((spec) => Listener.open(spec, this, this.log)));
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined || this.closing !== undefined) {
      for (const listener of opened) listener.close();
      const reason = failed === undefined ? 'the edge is closed' : (failed.reason as Error).message;
      return this.reject(reason, config);
    }

    this.table = table;
    for (const listener of opened) {
      this.listeners.set(listener.key, listener);
      listener.activate();
    }
    for (const [key, listener] of this.listeners) {
      if (table.listeners.has(key)) continue;
      listener.close();
      this.listeners.delete(key);
    }
    for (const backend of removed) {
      this.draining.add(backend);
      backend.drain(this.drainTimeoutMs, (drained) => this.draining.delete(drained));
    }
    this.log.info(
      { version: config.version, listenersOpened: opened.length, backendsDraining: removed.length },
      'edge config applied',
    );

    if (this.stateFile !== undefined && table.config !== null) {
      try {
        await this.stateFile.write(table.config);
      } catch (err) {
        this.log.error({ err, path: this.stateFile.path }, 'edge state file not written');
      }
    }
    return { ok: true, applied: true, version: config.version };
  }

  private reject(reason: string, config: EdgeConfig): ApplyResult {
    this.log.warn({ version: (config as { version?: unknown } | null)?.version, reason }, 'edge config rejected');
    return { ok: false, reason };
  }

  private async shutdown(): Promise<void> {
    const listeners = [...this.listeners.values()];
    for (const listener of listeners) listener.close();
    for (const backend of [...this.table.backends.values(), ...this.draining]) {
      backend.stopDrainTimer();
      backend.destroyAll();
    }
    await Promise.all(listeners.map((l) => l.closed));
    this.listeners.clear();
    this.draining.clear();
  }
}
