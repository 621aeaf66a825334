// A cluster of edge worker processes sharing each listening socket (SCHED_NONE: every worker
// accepts on its own, the primary stays out of the data path). The primary sends snapshots and
// questions over IPC, brings a (re)started worker up to the latest snapshot before counting it as
// ready, restarts dead ones, and rolls them: since the primary owns each listening socket and
// hands it to every worker that listens on the same address, a new worker that has applied the
// snapshot accepts on the very sockets the old one used, so the old one can drain and go without
// a single socket closing (no connection refused).

import { randomBytes } from 'node:crypto';
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { EdgeConfig } from './edge-config.js';
import type { EdgePool, EdgeProcessOptions, RollResult, WorkerReport } from './edge-pool.js';
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
  | { type: 'report'; id: number; report: WorkerReport }
  /** An endpoint, listener or backend changed state on its own (bind retry, ejection). */
  | { type: 'changed' };

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
  /** Workers that have applied the latest snapshot (or started before any). */
  const ready = new Set<Worker>();
  const readyWaiters = new Map<Worker, (ok: boolean) => void>();
  /** Workers told to stop (replaced by a roll), still draining. */
  const retiring = new Set<Promise<void>>();
  let nextId = 1;
  let latest: EdgeConfig | null = null;
  let stopping = false;
  let restarts = 0;
  let rolling: Promise<RollResult> | undefined;

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

  /** Applies the latest snapshot until the worker has the one that is latest when it answers. */
  const catchUp = async (worker: Worker): Promise<void> => {
    let applied: EdgeConfig | null = null;
    while (latest !== null && applied !== latest && worker.isConnected()) {
      applied = latest;
      await ask(worker, { type: 'apply', id: nextId++, config: applied }, null);
    }
    if (!worker.isConnected()) return;
    ready.add(worker);
    readyWaiters.get(worker)?.(true);
    readyWaiters.delete(worker);
  };

  const whenReady = (worker: Worker, timeoutMs: number): Promise<boolean> =>
    ready.has(worker)
      ? Promise.resolve(true)
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            readyWaiters.delete(worker);
            resolve(false);
          }, timeoutMs);
          readyWaiters.set(worker, (ok) => {
            clearTimeout(timer);
            resolve(ok);
          });
        });

  // One secret for the cluster's life: every worker (and every rolled one) derives the same TLS
  // session ticket keys from it (tls/ticket-keys.ts), so a ticket from one worker resumes on another.
  const ticketSeed = randomBytes(32).toString('hex');

  /** Forks a worker for `slot`; the caller makes it the slot's worker (at once, or once ready). */
  const spawn = (slot: Slot): Worker => {
    const workerOptions = { drainTimeoutMs: options.drainTimeoutMs, connectTimeoutMs: options.connectTimeoutMs, logLevel: options.logLevel, io: options.io.mode, ticketSeed };
    const env = { [WORKER_OPTIONS_ENV]: JSON.stringify(workerOptions) };
    const worker = cluster.fork(env);
    worker.on('error', (err) => log.warn({ err, pid: worker.process.pid }, 'edge worker channel error'));
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ready') return void catchUp(worker);
      if (message.type === 'changed') return options.onStateChange?.();
      const waiting = pending.get(message.id);
      if (waiting === undefined) return;
      pending.delete(message.id);
      clearTimeout(waiting.timer);
      waiting.resolve(message.type === 'applied' ? message.result : message.report);
    });
    worker.on('exit', (code, signal) => {
      ready.delete(worker);
      readyWaiters.get(worker)?.(false);
      readyWaiters.delete(worker);
      // A worker a roll replaced, or one that never became the slot's: not restarted.
      if (slot.worker !== worker) return;
      slot.worker = null;
      if (stopping) return;
      slot.failures = Date.now() - slot.startedAt > STABLE_MS ? 1 : slot.failures + 1;
      const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (slot.failures - 1));
      log.error({ pid: worker.process.pid, code, signal, restartInMs: backoff }, 'edge worker died');
      slot.restartTimer = setTimeout(() => {
        restarts++;
        place(slot, spawn(slot));
      }, backoff);
    });
    return worker;
  };

  const place = (slot: Slot, worker: Worker): void => {
    slot.worker = worker;
    slot.startedAt = Date.now();
  };

  /** Tells `worker` to drain and exit; bounded: killed after the drain timeout plus a margin. */
  const retire = (worker: Worker): Promise<void> =>
    new Promise<void>((resolve) => {
      // Draining: it must not take a snapshot again.
      ready.delete(worker);
      if (worker.isDead()) return resolve();
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
    });

  for (let i = 0; i < options.workers; i++) {
    const slot: Slot = { worker: null, startedAt: 0, failures: 0, restartTimer: undefined };
    slots.push(slot);
    place(slot, spawn(slot));
  }
  const started = await Promise.all(slots.map((s) => whenReady(s.worker!, replyTimeoutMs * 2)));
  if (started.includes(false)) {
    // Give up whole: no restart loop may outlive a failed start.
    stopping = true;
    for (const slot of slots) slot.worker?.process.kill('SIGKILL');
    throw new Error(`edge workers did not start within ${replyTimeoutMs * 2} ms`);
  }
  log.info({ workers: slots.map((s) => s.worker?.process.pid) }, 'edge workers ready');

  const live = (): Worker[] => slots.flatMap((s) => (s.worker !== null && ready.has(s.worker) ? [s.worker] : []));

  const roll = async (): Promise<RollResult> => {
    const replaced: { from: number; to: number }[] = [];
    for (const slot of slots) {
      if (stopping) return { ok: false, error: 'the edge is stopping', replaced };
      const old = slot.worker;
      const fresh = spawn(slot);
      // Ready = bound to the shared sockets and serving the latest snapshot.
      const up = await whenReady(fresh, replyTimeoutMs * 2 + options.drainTimeoutMs);
      if (stopping) {
        await retire(fresh);
        return { ok: false, error: 'the edge is stopping', replaced };
      }
      if (!up) {
        fresh.process.kill('SIGKILL');
        const error = `a new edge worker (pid ${fresh.process.pid}) did not become ready; pid ${old?.process.pid ?? 'none'} keeps serving`;
        log.error({ replaced }, error);
        return { ok: false, error, replaced };
      }
      clearTimeout(slot.restartTimer);
      place(slot, fresh);
      slot.failures = 0;
      if (old !== null) {
        const gone = retire(old);
        retiring.add(gone);
        void gone.then(() => retiring.delete(gone));
      }
      replaced.push({ from: old?.process.pid ?? 0, to: fresh.process.pid ?? 0 });
      log.info({ from: old?.process.pid, to: fresh.process.pid }, 'edge worker replaced');
    }
    return { ok: true, replaced };
  };

  return {
    size: options.workers,
    get restarts() {
      return restarts;
    },
    async apply(config) {
      latest = config;
      const noAnswer: ApplyResult = { ok: false, reason: 'the worker did not answer in time' };
      // Every caught-up worker, including one a roll is about to put in place.
      return Promise.all([...ready].map((w) => ask<ApplyResult>(w, { type: 'apply', id: nextId++, config }, noAnswer)));
    },
    async reports() {
      const answers = await Promise.all(live().map((w) => ask<WorkerReport | null>(w, { type: 'report', id: nextId++ }, null)));
      return answers.filter((r): r is WorkerReport => r !== null);
    },
    roll() {
      // One roll at a time: a second request while one runs gets the same outcome.
      rolling ??= roll().finally(() => (rolling = undefined));
      return rolling;
    },
    async stop() {
      stopping = true;
      for (const slot of slots) clearTimeout(slot.restartTimer);
      const running = slots.flatMap((s) => (s.worker === null ? [] : [s.worker]));
      await Promise.all([...running.map(retire), ...retiring]);
    },
  };
}
