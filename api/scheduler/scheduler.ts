// The scheduler: turns triggers (API writes, Docker events, a periodic resync) into reconcile
// passes per app through the work queue, and retries held-back starts when their time comes.
import type { Logger } from 'pino';
import { isNotNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances } from '../../db/schema/index.js';
import { LABELS, type Runtime } from '../runtime/runtime.js';
import type { Reconciler } from './reconciler.js';
import { createWorkQueue } from './work-queue.js';

export interface SchedulerOptions {
  db: Db;
  runtime: Runtime;
  reconciler: Reconciler;
  /** Only events of containers carrying this installation label trigger work. */
  installationId: string;
  log: Logger;
  /** A cross-process lock per app (Postgres advisory lock): one reconcile of an app at a time. */
  tryLock: (key: string) => Promise<(() => Promise<void>) | null>;
  resyncMs?: number;
}

export interface Scheduler {
  start(): void;
  /** Ask for a reconcile of this app (coalesced). */
  enqueue(appId: string): void;
  close(): Promise<void>;
}

export function createScheduler(options: SchedulerOptions): Scheduler {
  const { db, runtime, reconciler } = options;
  const log = options.log.child({ component: 'scheduler' });
  const abort = new AbortController();
  const queue = createWorkQueue(async (appId) => {
    const unlock = await options.tryLock(`pier:reconcile:${appId}`);
    if (!unlock) {
      // Another server reconciles this app now; look again later, from fresh state.
      log.debug({ app: appId }, 'app locked by another server');
      queue.enqueue(appId, 2_000);
      return;
    }
    // These two lines let a test prove that no two servers reconcile one app at the same time.
    log.debug({ app: appId, at: Date.now() }, 'reconcile begin');
    try {
      const result = await reconciler.reconcile(appId);
      if (result.changed) queue.enqueue(appId, 250);
      if (result.retryAt) queue.enqueue(appId, Math.max(0, result.retryAt.getTime() - Date.now()) + 50);
    } finally {
      log.debug({ app: appId, at: Date.now() }, 'reconcile end');
      await unlock();
    }
  }, log);
  let resync: NodeJS.Timeout | undefined;

  async function resyncAll(): Promise<void> {
    const withRelease = await db.select({ id: apps.id }).from(apps).where(isNotNull(apps.currentReleaseId));
    const withInstances = await db.selectDistinct({ id: instances.appId }).from(instances);
    for (const id of new Set([...withRelease, ...withInstances].map((r) => r.id))) queue.enqueue(id);
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
        log.warn({ err }, 'runtime event stream failed; resubscribing');
      }
      if (abort.signal.aborted) return;
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 10_000);
      // Events may have been missed while the stream was down.
      await resyncAll().catch((err) => log.warn({ err }, 'resync failed'));
    }
  }

  return {
    start() {
      void followRuntimeEvents();
      void resyncAll().catch((err) => log.warn({ err }, 'resync failed'));
      resync = setInterval(() => void resyncAll().catch((err) => log.warn({ err }, 'resync failed')), options.resyncMs ?? 10_000);
      resync.unref();
    },
    enqueue(appId) {
      queue.enqueue(appId);
    },
    async close() {
      abort.abort();
      if (resync) clearInterval(resync);
      await queue.close();
    },
  };
}
