// The edge processes a standalone edge runs: one in-process edge, or a cluster of workers (see
// edge-cluster.ts). The control side (file or API feed, state file, admin server) talks to either.

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
  /** Stops accepting, lets established connections finish (up to the drain timeout), closes. */
  stop(): Promise<void>;
}

export interface EdgeProcessOptions {
  /** How long connections may run on after their backend or listener went away, and at stop. */
  drainTimeoutMs: number;
  connectTimeoutMs?: number | undefined;
  /** The TCP I/O the edge processes run on (a cluster's workers load the same mode). */
  io: TcpIo;
}

export function createInProcessPool(options: EdgeProcessOptions & { log: Logger }): EdgePool {
  // No state file here: the control side persists only snapshots every process accepted.
  const edge = createEdge({
    log: options.log,
    io: options.io,
    drainTimeoutMs: options.drainTimeoutMs,
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
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
    stop() {
      stopping ??= drainEdge(edge, options.drainTimeoutMs);
      return stopping;
    },
  };
}
