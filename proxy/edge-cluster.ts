// A cluster of edge worker processes sharing each listening socket (SCHED_NONE: every worker
// accepts on its own, the primary stays out of the data path). The primary sends snapshots and
// questions over IPC, replays the latest snapshot to a (re)started worker, restarts dead ones.

import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { EdgeConfig } from './edge-config.js';
import type { EdgePool, EdgeProcessOptions, WorkerReport } from './edge-pool.js';
import type { ApplyResult } from './edge.js';

/** Primary → worker. */
export type ToWorker =
  | { type: 'apply'; id: number; config: EdgeConfig }
  | { type: 'report'; id: number }
  | { type: 'stop' };

/** Worker → primary. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'applied'; id: number; result: ApplyResult }
  | { type: 'report'; id: number; report: WorkerReport };

export interface EdgeClusterOptions extends EdgeProcessOptions {
  workers: number;
  log: Logger;
  /** pino level for the workers' own logs. */
  logLevel: string;
  /** How long a worker may take to answer an IPC question (default 5 s). */
  replyTimeoutMs?: number;
}

/** Env variable carrying the worker's options as JSON (read once by the worker entry point). */
export const WORKER_OPTIONS_ENV = 'PIER_EDGE_WORKER_OPTIONS';

const WORKER_ENTRY = fileURLToPath(new URL('./edge-worker.js', import.meta.url));
const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 10_000;
/** A worker that lived this long resets the restart backoff. */
const STABLE_MS = 10_000;

interface Pending {
  resolve: (value: unknown) => void;
  timer: NodeJS.Timeout;
}

interface Slot {
  worker: Worker | null;
  ready: boolean;
  startedAt: number;
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/** Forks the workers and resolves once each has said it is ready. */
export async function createEdgeCluster(options: EdgeClusterOptions): Promise<EdgePool> {
  const log = options.log.child({ component: 'edge-cluster' });
  const replyTimeoutMs = options.replyTimeoutMs ?? 5_000;
  // Must be set before the first fork; the primary then hands the listening handle to workers.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: WORKER_ENTRY, args: [], silent: false });

  const slots: Slot[] = [];
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let latest: EdgeConfig | null = null;
  let stopping = false;
  let restarts = 0;
  const readyWaiters: (() => void)[] = [];

  const ask = <T>(worker: Worker, message: ToWorker & { id: number }, fallback: T): Promise<T> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(message.id);
        resolve(fallback);
      }, replyTimeoutMs);
      pending.set(message.id, { resolve: resolve as (v: unknown) => void, timer });
      const failed = (): void => {
        clearTimeout(timer);
        pending.delete(message.id);
        resolve(fallback);
      };
      // A worker that just died (killed, 'exit' not seen yet) has a closed channel: with a
      // callback, send reports that there instead of as an 'error' event that would end the primary.
      if (!worker.isConnected()) return failed();
      try {
        worker.send(message, (err: Error | null) => {
          if (err !== null) failed();
        });
      } catch {
        failed();
      }
    });

  const fork = (slot: Slot): void => {
    const workerOptions = { drainTimeoutMs: options.drainTimeoutMs, connectTimeoutMs: options.connectTimeoutMs, logLevel: options.logLevel, io: options.io.mode };
    const env = { [WORKER_OPTIONS_ENV]: JSON.stringify(workerOptions) };
    const worker = cluster.fork(env);
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    worker.on('error', (err) => log.warn({ err, pid: worker.process.pid }, 'edge worker channel error'));
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        slot.ready = true;
        // A restarted worker catches up with what the others serve.
        if (latest !== null) void ask(worker, { type: 'apply', id: nextId++, config: latest }, null);
        if (slots.every((s) => s.ready)) for (const w of readyWaiters.splice(0)) w();
        return;
      }
      const waiting = pending.get(message.id);
      if (waiting === undefined) return;
      pending.delete(message.id);
      clearTimeout(waiting.timer);
      waiting.resolve(message.type === 'applied' ? message.result : message.report);
    });
    worker.on('exit', (code, signal) => {
      slot.worker = null;
      slot.ready = false;
      if (stopping) return;
      slot.failures = Date.now() - slot.startedAt > STABLE_MS ? 1 : slot.failures + 1;
      const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (slot.failures - 1));
      log.error({ pid: worker.process.pid, code, signal, restartInMs: backoff }, 'edge worker died');
      slot.restartTimer = setTimeout(() => {
        restarts++;
        fork(slot);
      }, backoff);
    });
  };

  for (let i = 0; i < options.workers; i++) {
    const slot: Slot = { worker: null, ready: false, startedAt: 0, failures: 0, restartTimer: undefined };
    slots.push(slot);
    fork(slot);
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Give up whole: no restart loop may outlive a failed start.
      stopping = true;
      for (const slot of slots) {
        clearTimeout(slot.restartTimer);
        slot.worker?.process.kill('SIGKILL');
      }
      reject(new Error(`edge workers did not start within ${replyTimeoutMs * 2} ms`));
    }, replyTimeoutMs * 2);
    readyWaiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  log.info({ workers: slots.map((s) => s.worker?.process.pid) }, 'edge workers ready');

  const live = (): Worker[] => slots.flatMap((s) => (s.worker !== null && s.ready ? [s.worker] : []));

  return {
    size: options.workers,
    get restarts() {
      return restarts;
    },
    async apply(config) {
      latest = config;
      const noAnswer: ApplyResult = { ok: false, reason: 'the worker did not answer in time' };
      return Promise.all(live().map((w) => ask<ApplyResult>(w, { type: 'apply', id: nextId++, config }, noAnswer)));
    },
    async reports() {
      const answers = await Promise.all(live().map((w) => ask<WorkerReport | null>(w, { type: 'report', id: nextId++ }, null)));
      return answers.filter((r): r is WorkerReport => r !== null);
    },
    async stop() {
      stopping = true;
      for (const slot of slots) clearTimeout(slot.restartTimer);
      const running = slots.flatMap((s) => (s.worker === null ? [] : [s.worker]));
      await Promise.all(
        running.map(
          (worker) =>
            new Promise<void>((resolve) => {
              // Bounded: a worker that has not exited after its drain plus a margin is killed.
              const timer = setTimeout(() => worker.process.kill('SIGKILL'), options.drainTimeoutMs + 5_000);
              worker.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              const viaSignal = (): void => void worker.process.kill('SIGTERM');
              if (!worker.isConnected()) return viaSignal();
              try {
                worker.send({ type: 'stop' } satisfies ToWorker, (err: Error | null) => {
                  if (err !== null) viaSignal();
                });
              } catch {
                viaSignal();
              }
            }),
        ),
      );
    },
  };
}
