// The edge processes a standalone edge runs: one in-process edge, or a cluster of workers (see
// edge-cluster.ts). The control side (file or API feed, state file, admin server, report) talks
// to either.

import type { Logger } from 'pino';
import type { EdgeConfig } from './edge-config.js';
import { drainEdge } from './edge-drain.js';
import type { EdgeMetrics } from './edge-metrics.js';
import { createEdge, type ApplyResult, type EdgeStatus } from './edge.js';
import type { TcpIo } from './tcp-io/tcp-io.js';

/** What one edge process reports to the admin server. */
export interface WorkerReport {
  pid: number;
  status: EdgeStatus;
  metrics: EdgeMetrics;
}

export interface EdgePool {
  /** Number of edge processes the pool runs when healthy. */
  readonly size: number;
  /** Worker restarts since start (always 0 in process). */
  readonly restarts: number;
  /** Applies a snapshot in every live edge process; one result per process. */
  apply(config: EdgeConfig): Promise<ApplyResult[]>;
  reports(): Promise<WorkerReport[]>;
  /**
   * Replaces every worker with a new process, one at a time, without closing a listening socket:
   * the new worker binds the same shared sockets and applies the current snapshot before the old
   * one drains. In process there is nothing to replace: an error says so.
   */
  roll(): Promise<RollResult>;
  /** Stops accepting, lets established connections finish (up to the drain timeout), closes. */
  stop(): Promise<void>;
}

export type RollResult = { ok: true; replaced: { from: number; to: number }[] } | { ok: false; error: string; replaced: { from: number; to: number }[] };

export interface EdgeProcessOptions {
  /** How long connections may run on after their backend or listener went away, and at stop. */
  drainTimeoutMs: number;
  connectTimeoutMs?: number | undefined;
  /** The TCP I/O the edge processes run on (a cluster's workers load the same mode). */
  io: TcpIo;
  /** An edge process saw an endpoint, listener or backend change state on its own. */
  onStateChange?: (() => void) | undefined;
}

export function createInProcessPool(options: EdgeProcessOptions & { log: Logger }): EdgePool {
  // No state file here: the control side persists only snapshots every process accepted.
  const edge = createEdge({
    log: options.log,
    io: options.io,
    drainTimeoutMs: options.drainTimeoutMs,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
    ...(options.onStateChange === undefined ? {} : { onStateChange: options.onStateChange }),
  });
  let stopping: Promise<void> | undefined;
  return {
    size: 1,
    restarts: 0,
    async apply(config) {
      return [await edge.apply(config)];
    },
    async reports() {
      return [{ pid: process.pid, status: edge.status(), metrics: edge.metrics() }];
    },
    async roll() {
      return { ok: false, error: 'the edge runs in this process (one worker, no cluster): there are no workers to replace; restart the process, or run 2 or more workers', replaced: [] };
    },
    stop() {
      stopping ??= drainEdge(edge, options.drainTimeoutMs);
      return stopping;
    },
  };
}
