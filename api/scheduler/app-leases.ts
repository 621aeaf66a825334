// Fencing for the reconciler. The advisory lock says who may reconcile an app; the lease row says
// it to the database: taking the lock bumps the app's epoch, and every reconciler write runs in a
// transaction that first locks the lease row and checks the epoch is still the one it got. A
// server whose lock session died (and whose lock another server took) gets E_LEASE_LOST instead
// of writing over the new holder's work.
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { appLeases } from '../../db/schema/index.js';
import { sqlState } from '../database-errors.js';
import { PierError } from '../pier-error.js';
import type { Transactions, Txn } from '../transactions.js';

export interface Lease {
  appId: string;
  epoch: number;
  /** The lock's signal: aborts the moment the lock is known lost. */
  signal: AbortSignal;
}

export interface AppLeases {
  /** Bumps the app's epoch, once its lock is held; null when the app does not exist. */
  acquire(appId: string, signal: AbortSignal): Promise<Lease | null>;
  /** Runs `fn` in a transaction that holds the lease row and has checked the epoch. */
  fenced<T>(lease: Lease, fn: (t: Txn) => Promise<T>): Promise<T>;
}

export function leaseLost(lease: Lease, why: string): PierError {
  return new PierError('E_LEASE_LOST', `this server no longer reconciles app ${lease.appId}: ${why}`, { status: 409 });
}

export function isLeaseLost(err: unknown): boolean {
  return err instanceof PierError && err.code === 'E_LEASE_LOST';
}

/** Throws E_LEASE_LOST when the lease's lock is gone: call it between steps. */
export function checkLease(lease: Lease): void {
  if (lease.signal.aborted) throw leaseLost(lease, 'its lock was lost');
}

export function createAppLeases(options: { db: Db; transactions: Transactions; holder: string }): AppLeases {
  const { db, transactions, holder } = options;
  return {
    async acquire(appId, signal) {
      try {
        const [row] = await db
          .insert(appLeases)
          .values({ appId, epoch: 1, holder })
          .onConflictDoUpdate({ target: appLeases.appId, set: { epoch: sql`${appLeases.epoch} + 1`, holder, acquiredAt: sql`now()` } })
          .returning({ epoch: appLeases.epoch });
        if (!row) throw new Error('lease upsert returned no row');
        return { appId, epoch: row.epoch, signal };
      } catch (err) {
        // foreign_key_violation: the app is gone (or never was); there is nothing to reconcile.
        if (sqlState(err) === '23503') return null;
        throw err;
      }
    },
    async fenced(lease, fn) {
      checkLease(lease);
      return transactions.run(async (t) => {
        const [row] = await t.tx.select({ epoch: appLeases.epoch }).from(appLeases).where(eq(appLeases.appId, lease.appId)).for('no key update');
        if (row?.epoch !== lease.epoch) throw leaseLost(lease, `another server took it (epoch ${row?.epoch ?? 'none'}, ours ${lease.epoch})`);
        return fn(t);
      });
    },
  };
}
