// The volumes' background keeper: owns scheduled snapshots, retention and the end of volumes of
// deleted apps. One pass, redone from the database each time (so a restart loses nothing and a
// long downtime gives one catch-up snapshot, not one per missed period):
//   1. a volume whose `[[volumes]]` entry has `snapshot_every` and whose last scheduled snapshot
//      (or its creation) is that long ago gets one, then its scheduled snapshots past `keep` go;
//   2. a volume of a deleted app that nothing runs on any more is deleted with a final snapshot,
//      kept (with its other snapshots) for the undelete period;
//   3. snapshots past their expiry are removed, and deleted volumes past their purge time.
// A failure on one volume is logged, recorded as an event and retried later (1 min doubling up to
// its period); a failed pass (the database away) is retried at the next tick. Nothing ends the server.
import { and, asc, desc, eq, isNotNull, isNull, lte } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { AdvisoryLocks } from '../../db/advisory-locks.js';
import type { Db } from '../../db/database.js';
import { apps, snapshots, volumes, type App, type Snapshot, type Volume } from '../../db/schema/index.js';
import type { VolumeSpec } from '../manifest.js';
import type { Transactions } from '../transactions.js';
import type { VolumeService } from './volume-service.js';
import type { VolumeMover } from './volume-mover.js';

export interface VolumeKeeperOptions {
  db: Db;
  transactions: Transactions;
  service: VolumeService;
  /** Moved volumes' sources past their retention are purged by the keeper's pass. */
  mover?: VolumeMover | undefined;
  log: Logger;
  /** One keeper at a time among servers sharing the database. */
  locks?: AdvisoryLocks;
  /** Between passes (default 60 s). */
  tickMs?: number;
  /** First retry of a volume that failed (default 60 s), doubling up to its period. */
  retryMs?: number;
}

/** Scheduled snapshots kept when `snapshot_every` is set and neither `keep` nor `keep_for` is. */
export const DEFAULT_KEEP = 5;

export interface KeeperPass {
  taken: Snapshot[];
  expired: string[];
  retired: string[];
  purged: string[];
  /** Moves whose kept source was removed. */
  movesPurged: string[];
  failed: { volumeId: string; error: string }[];
}

interface Failure {
  count: number;
  notBefore: number;
}

export function createVolumeKeeper(options: VolumeKeeperOptions) {
  const { db, transactions, service, log } = options;
  const { take, retire, dropSnapshot, liveHolder, specOf, serial, now } = service.internals;
  const tickMs = options.tickMs ?? 60_000;
  const retryMs = options.retryMs ?? 60_000;
  const failures = new Map<string, Failure>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let running: Promise<unknown> = Promise.resolve();

  function blocked(volumeId: string): boolean {
    const f = failures.get(volumeId);
    return f !== undefined && now() < f.notBefore;
  }

  async function failed(pass: KeeperPass, app: App, volume: Volume, what: string, err: unknown, periodMs: number): Promise<void> {
    const f = failures.get(volume.id) ?? { count: 0, notBefore: 0 };
    f.count++;
    const wait = Math.min(retryMs * 2 ** (f.count - 1), Math.max(periodMs, retryMs));
    f.notBefore = now() + wait;
    failures.set(volume.id, f);
    const message = err instanceof Error ? err.message : String(err);
    pass.failed.push({ volumeId: volume.id, error: message });
    log.error({ err, volume: volume.id, app: app.id, retryInMs: wait }, `${what} failed; retrying`);
    await transactions
      .run((t) =>
        t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'volume.keeper_failed',
          reason: what,
          message: `${what} of volume ${volume.name} failed: ${message}; retrying in ${Math.round(wait / 1000)} s`,
          data: { volumeId: volume.id, code: (err as { code?: unknown }).code ?? null, attempt: f.count },
        }),
      )
      .catch((e: unknown) => log.warn({ err: e }, 'keeper event not recorded'));
  }

  /** Step 1: the scheduled snapshot when due, then the count retention. */
  async function schedule(pass: KeeperPass, app: App, volume: Volume, spec: VolumeSpec & { snapshot_every: number }): Promise<void> {
    const [last] = await db
      .select({ createdAt: snapshots.createdAt })
      .from(snapshots)
      .where(and(eq(snapshots.volumeId, volume.id), eq(snapshots.kind, 'scheduled')))
      .orderBy(desc(snapshots.createdAt))
      .limit(1);
    const since = (last?.createdAt ?? volume.createdAt).getTime();
    if (now() - since < spec.snapshot_every) return;
    const expiresAt = spec.keep_for !== undefined ? new Date(now() + spec.keep_for) : null;
    const snap = await serial(volume.id, () => take(app, volume, 'scheduled', expiresAt));
    pass.taken.push(snap);
    const keep = spec.keep ?? (spec.keep_for === undefined ? DEFAULT_KEEP : undefined);
    if (keep === undefined) return;
    const older = await db
      .select()
      .from(snapshots)
      .where(and(eq(snapshots.volumeId, volume.id), eq(snapshots.kind, 'scheduled')))
      .orderBy(desc(snapshots.createdAt))
      .offset(keep);
    for (const s of older) {
      await dropSnapshot(app, s, 'snapshot.expired', `removed: volume ${volume.name} keeps its ${keep} newest scheduled snapshots`);
      pass.expired.push(s.id);
    }
  }

  async function pass(): Promise<KeeperPass> {
    const result: KeeperPass = { taken: [], expired: [], retired: [], purged: [], movesPurged: [], failed: [] };
    const live = await db
      .select({ volume: volumes, app: apps })
      .from(volumes)
      .innerJoin(apps, eq(apps.id, volumes.appId))
      .where(isNull(volumes.deletedAt))
      .orderBy(asc(volumes.createdAt));
    for (const { volume, app } of live) {
      if (blocked(volume.id)) continue;
      if (app.deletedAt) {
        try {
          const done = await serial(volume.id, async () => ((await liveHolder(volume)) ? null : retire(app, volume, 'app-deleted')));
          if (done) {
            result.retired.push(volume.id);
            failures.delete(volume.id);
          }
        } catch (err) {
          await failed(result, app, volume, 'deleting', err, retryMs);
        }
        continue;
      }
      if (volume.state !== 'ready') continue;
      const spec = await specOf(app, volume);
      if (spec?.snapshot_every === undefined) continue;
      try {
        await schedule(result, app, volume, spec as VolumeSpec & { snapshot_every: number });
        failures.delete(volume.id);
      } catch (err) {
        await failed(result, app, volume, 'scheduled snapshot', err, spec.snapshot_every);
      }
    }

    const at = new Date(now());
    const expired = await db
      .select({ snapshot: snapshots, app: apps })
      .from(snapshots)
      .innerJoin(apps, eq(apps.id, snapshots.appId))
      .where(and(isNotNull(snapshots.expiresAt), lte(snapshots.expiresAt, at)));
    for (const { snapshot, app } of expired) {
      const run = () => dropSnapshot(app, snapshot, 'snapshot.expired', `expired (kept until ${snapshot.expiresAt?.toISOString()})`);
      try {
        await (snapshot.volumeId ? serial(snapshot.volumeId, run) : run());
        result.expired.push(snapshot.id);
      } catch (err) {
        log.error({ err, snapshot: snapshot.id }, 'expired snapshot not removed; retrying next pass');
        result.failed.push({ volumeId: snapshot.volumeId ?? '', error: (err as Error).message });
      }
    }
    // A deleted volume past its purge: its data went at delete (removed again here, in case that
    // failed), its final snapshot just expired.
    const purged = await db
      .select({ volume: volumes, app: apps })
      .from(volumes)
      .innerJoin(apps, eq(apps.id, volumes.appId))
      .where(and(isNotNull(volumes.deletedAt), lte(volumes.purgeAfter, at)));
    for (const { volume, app } of purged) {
      try {
        if (service.roots.has(volume.root) || volume.root.startsWith('node:')) await service.roots.get(volume.root).remove(volume.id);
      } catch (err) {
        log.warn({ err, volume: volume.id }, 'deleted volume\'s data not removed; the next pass tries again');
        result.failed.push({ volumeId: volume.id, error: (err as Error).message });
        continue;
      }
      await transactions.run(async (t) => {
        await t.tx.delete(volumes).where(eq(volumes.id, volume.id));
        await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.purged', reason: 'retention', message: `deleted volume ${volume.name} purged (undelete was possible until ${volume.purgeAfter?.toISOString()})`, data: { volumeId: volume.id } });
      });
      result.purged.push(volume.id);
    }
    if (options.mover) result.movesPurged = await options.mover.purge(at);
    const changed = result.movesPurged.length + result.taken.length + result.expired.length + result.retired.length + result.purged.length;
    if (changed > 0) log.info({ taken: result.taken.length, expired: result.expired.length, retired: result.retired.length, purged: result.purged.length }, 'volume keeper pass');
    return result;
  }

  /** One pass, under the keepers' lock when there is one (null: another server holds it). */
  async function runOnce(): Promise<KeeperPass | null> {
    const lock = options.locks ? await options.locks.tryLock('pier:volume-keeper') : undefined;
    if (lock === null) return null;
    try {
      return await pass();
    } finally {
      await lock?.release();
    }
  }

  function arm(ms: number): void {
    if (closed) return;
    timer = setTimeout(() => {
      running = runOnce()
        .catch((err: unknown) => log.error({ err, retryInMs: tickMs }, 'volume keeper pass failed; retrying'))
        .finally(() => arm(tickMs));
    }, ms);
    timer.unref();
  }

  return {
    runOnce,
    /** The first pass soon after the start: a snapshot missed while the server was down is taken then. */
    start(firstMs = Math.min(tickMs, 5_000)): void {
      arm(firstMs);
    },
    async close(): Promise<void> {
      closed = true;
      if (timer) clearTimeout(timer);
      await running.catch(() => undefined);
    },
  };
}

export type VolumeKeeper = ReturnType<typeof createVolumeKeeper>;
