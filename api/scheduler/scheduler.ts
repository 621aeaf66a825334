// The scheduler: turns triggers (API writes, runtime events, a periodic resync) into reconcile
// passes per app through the work queue, a few at a time, each under the app's lock and lease.
// A failed pass is retried with backoff; a pass that lost its lock stops and takes it again later.
// The resync lists every container and every active instance once and enqueues only the apps
// whose actual state differs from the desired one (drift.ts).
// An app whose passes keep failing for a reason of its own (not the engine or the database being
// down: the system events say that) gets one `reconcile.failing` event per reason and streak,
// and `reconcile.recovered` once a pass succeeds again.
import type { Logger } from 'pino';
import { eq, inArray, or, sql } from 'drizzle-orm';
import type { AdvisoryLocks, HeldLock } from '../../db/advisory-locks.js';
import type { Db } from '../../db/database.js';
import { apps, deployments, instances, releases } from '../../db/schema/index.js';
import { LABELS, type Runtime } from '../runtime/runtime.js';
import type { EventLog } from '../event-log.js';
import { isDatabaseUnavailable } from '../database-errors.js';
import { isPierError } from '../pier-error.js';
import { isLeaseLost, type AppLeases } from './app-leases.js';
import { findDrift } from './drift.js';
import { KEEP_STOPPED, type Reconciler } from './reconciler.js';
import { createWorkQueue, type WorkQueueStats } from './work-queue.js';

export interface SchedulerOptions {
  db: Db;
  runtime: Runtime;
  reconciler: Reconciler;
  leases: AppLeases;
  /** Cross-process locks (PostgreSQL advisory locks): one reconcile of an app at a time. */
  locks: AdvisoryLocks;
  /** Only events of containers carrying this installation label trigger work. */
  installationId: string;
  log: Logger;
  /** Reconcile passes that run at once; keep it below the database pool's size. */
  concurrency: number;
  resyncMs?: number;
  /** A failed pass is retried after min·2^n ms, up to max. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Where `reconcile.failing` and `reconcile.recovered` go (none: only logged). */
  events?: EventLog;
  /** Told after each reconcile pass, with its duration (for /metrics). */
  onPass?: (seconds: number, outcome: PassOutcome) => void;
}

export type PassOutcome = 'ok' | 'failed' | 'lock-lost';

export interface ResyncResult {
  /** Apps enqueued, with why. */
  enqueued: Map<string, string>;
}

export interface Scheduler {
  start(): void;
  /** Ask for a reconcile of this app (coalesced). */
  enqueue(appId: string): void;
  /** One resync pass now: enqueues the apps that drifted. */
  resync(): Promise<ResyncResult>;
  /** Enqueues every app with a release or instances (the blind resync; a reference for benchmarks). */
  resyncEverything(): Promise<number>;
  /** Resolves when no pass runs or waits (delayed retries aside). */
  idle(): Promise<void>;
  stats(): WorkQueueStats;
  close(): Promise<void>;
}

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { db, runtime, reconciler, leases, locks } = options;
  const log = options.log.child({ component: 'scheduler' });
  const abort = new AbortController();
  const retryMin = options.retryMinMs ?? 500;
  const retryMax = options.retryMaxMs ?? 30_000;
  /** Failures in a row per app, for the retry backoff, and the reasons of this streak on record. */
  const failures = new Map<string, { count: number; recorded: Set<string> }>();

  const queue = createWorkQueue(
    async (appId) => {
      let lock: HeldLock | null;
      try {
        lock = await locks.tryLock(`pier:reconcile:${appId}`);
      } catch (err) {
        return retry(appId, err, 'cannot take the app lock');
      }
      if (!lock) {
        // Another server reconciles this app now; look again later, from fresh state.
        log.debug({ app: appId }, 'app locked by another server');
        queue.enqueue(appId, 2_000);
        return;
      }
      // These two lines let a test prove that no two servers reconcile one app at the same time.
      log.debug({ app: appId, at: Date.now() }, 'reconcile begin');
      const started = performance.now();
      const passed = (outcome: PassOutcome) => options.onPass?.((performance.now() - started) / 1000, outcome);
      try {
        const lease = await leases.acquire(appId, lock.signal);
        if (!lease) return; // the app is gone
        const result = await reconciler.reconcile(appId, lease);
        passed('ok');
        recovered(appId);
        if (result.changed) queue.enqueue(appId, 250);
        if (result.retryAt) queue.enqueue(appId, Math.max(0, result.retryAt.getTime() - Date.now()) + 50);
      } catch (err) {
        passed(isLeaseLost(err) ? 'lock-lost' : 'failed');
        if (isLeaseLost(err)) {
          // Nothing more was written: take the lock (and a new lease) again, from fresh state.
          log.warn({ app: appId, reason: (err as Error).message }, 'lost the app lock mid-reconcile; stopped acting on it');
          queue.enqueue(appId, 1_000);
        } else {
          retry(appId, err, 'reconcile failed');
        }
      } finally {
        log.debug({ app: appId, at: Date.now() }, 'reconcile end');
        await lock.release().catch((err: unknown) => log.warn({ err, app: appId }, 'lock release failed'));
      }
    },
    log,
    { concurrency: options.concurrency },
  );
  let resyncTimer: NodeJS.Timeout | undefined;

  function retry(appId: string, err: unknown, what: string): void {
    const streak = failures.get(appId) ?? { count: 0, recorded: new Set<string>() };
    streak.count++;
    failures.set(appId, streak);
    const n = streak.count;
    const delay = Math.min(retryMin * 2 ** (n - 1), retryMax);
    log.warn({ err, app: appId, attempt: n, retryInMs: delay }, `${what}; retrying`);
    queue.enqueue(appId, delay);
    const reason = failureReason(err);
    if (n >= FAILING_AFTER && reason && !streak.recorded.has(reason)) void recordFailing(appId, streak, reason, err, delay);
  }

  async function recordFailing(appId: string, streak: { count: number; recorded: Set<string> }, reason: string, err: unknown, delay: number): Promise<void> {
    if (!options.events) return;
    // Taken before the write: a second failure while it is written does not record it twice.
    streak.recorded.add(reason);
    try {
      const [app] = await db.select({ orgId: apps.orgId, name: apps.name }).from(apps).where(eq(apps.id, appId));
      if (!app) return;
      const message = err instanceof Error ? err.message : String(err);
      await options.events.record({
        orgId: app.orgId,
        appId,
        type: 'reconcile.failing',
        reason,
        message: `Pier cannot bring ${app.name} to its desired state: ${message} (${streak.count} passes failed in a row; retrying, at most every ${Math.round(retryMax / 1000)} s)`,
        data: { attempts: streak.count, retryInMs: delay, ...(isPierError(err) ? { code: err.code } : {}) },
      });
    } catch (recordErr) {
      // Not on record: the next failure tries again.
      streak.recorded.delete(reason);
      log.warn({ err: recordErr, app: appId }, 'could not record reconcile.failing');
    }
  }

  function recovered(appId: string): void {
    const streak = failures.get(appId);
    failures.delete(appId);
    if (!streak || streak.recorded.size === 0 || !options.events) return;
    const events = options.events;
    void (async () => {
      const [app] = await db.select({ orgId: apps.orgId, name: apps.name }).from(apps).where(eq(apps.id, appId));
      if (!app) return;
      await events.record({
        orgId: app.orgId,
        appId,
        type: 'reconcile.recovered',
        reason: 'passed',
        message: `${app.name} reconciles again after ${streak.count} failed passes (${[...streak.recorded].join(', ')})`,
        data: { attempts: streak.count, reasons: [...streak.recorded] },
      });
    })().catch((err: unknown) => log.warn({ err, app: appId }, 'could not record reconcile.recovered'));
  }

  async function resync(): Promise<ResyncResult> {
    const containers = await runtime.list({ [LABELS.installation]: options.installationId });
    const appRows = await db
      .select({ id: apps.id, currentReleaseId: apps.currentReleaseId, deletedAt: apps.deletedAt, scale: apps.scale, processes: sql<Record<string, { count?: number }> | null>`${releases.manifest} -> 'processes'` })
      .from(apps)
      .leftJoin(releases, eq(releases.id, apps.currentReleaseId));
    const rows = await db
      .select({
        id: instances.id,
        appId: instances.appId,
        releaseId: instances.releaseId,
        process: instances.process,
        desiredState: instances.desiredState,
        observedState: instances.observedState,
        containerId: instances.containerId,
        address: instances.address,
      })
      .from(instances)
      .where(or(eq(instances.desiredState, 'running'), inArray(instances.observedState, ['starting', 'running'])));
    const rolling = await db.selectDistinct({ appId: deployments.appId }).from(deployments).where(eq(deployments.state, 'running'));
    const drift = findDrift({
      apps: appRows,
      rows,
      containers: containers.map((c) => ({ id: c.id, state: c.state, appId: c.labels[LABELS.app], instanceId: c.labels[LABELS.instance] })),
      rolling: new Set(rolling.map((r) => r.appId)),
      keepStopped: KEEP_STOPPED,
    });
    for (const [appId, why] of drift) {
      log.debug({ app: appId, why }, 'resync: app drifted');
      queue.enqueue(appId);
    }
    return { enqueued: drift };
  }

  async function resyncEverything(): Promise<number> {
    const withRelease = await db.select({ id: apps.id }).from(apps).where(sql`${apps.currentReleaseId} is not null`);
    const withInstances = await db.selectDistinct({ id: instances.appId }).from(instances);
    const ids = new Set([...withRelease, ...withInstances].map((r) => r.id));
    for (const id of ids) queue.enqueue(id);
    return ids.size;
  }

  /** A resync that fails (engine or database down) is logged and tried again at the next tick. */
  function resyncSoon(): void {
    resync().catch((err: unknown) => log.warn({ err }, 'resync failed; trying again at the next one'));
  }

  async function followRuntimeEvents(): Promise<void> {
    let delay = 500;
    while (!abort.signal.aborted) {
      try {
        for await (const ev of runtime.events(abort.signal)) {
          delay = 500;
          const appId = ev.labels[LABELS.app];
          if (appId && ev.labels[LABELS.installation] === options.installationId) queue.enqueue(appId);
        }
      } catch (err) {
        if (abort.signal.aborted) return;
        log.warn({ err, retryInMs: delay }, 'runtime event stream failed; resubscribing');
      }
      if (abort.signal.aborted) return;
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 10_000);
      // Events may have been missed while the stream was down.
      resyncSoon();
    }
  }

  return {
    start() {
      void followRuntimeEvents().catch((err: unknown) => log.error({ err }, 'runtime event follower ended'));
      resyncSoon();
      resyncTimer = setInterval(resyncSoon, options.resyncMs ?? 10_000);
      resyncTimer.unref();
    },
    enqueue(appId) {
      queue.enqueue(appId);
    },
    resync,
    resyncEverything,
    idle: () => queue.idle(),
    stats: () => queue.stats(),
    async close() {
      abort.abort();
      if (resyncTimer) clearInterval(resyncTimer);
      await queue.close();
    },
  };
}

/** Failed passes in a row before the streak goes on record: one or two are routine (a race, a restart). */
export const FAILING_AFTER = 3;

/**
 * The reason a failed pass is recorded under: its error code, or `error`. Null for an outage of
 * the engine or the database, which the system events (runtime.unavailable, database.unavailable)
 * record once for every app.
 */
export function failureReason(err: unknown): string | null {
  if (isDatabaseUnavailable(err)) return null;
  if (isPierError(err)) return err.code === 'E_RUNTIME_UNAVAILABLE' || err.code === 'E_DATABASE_UNAVAILABLE' ? null : err.code;
  const code = (err as { code?: unknown } | null)?.code;
  // A socket that refuses or vanishes is the engine (or the database) going away.
  if (typeof code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'EPIPE', 'ETIMEDOUT'].includes(code)) return null;
  return 'error';
}
