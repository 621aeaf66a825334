// Session-level advisory locks on PostgreSQL: one reconcile of an app at a time across server
// processes. They live on a one-connection client of their own, not on a reserved connection of
// the main pool: postgres.js 3.4.9 sends a query on a reserved connection whose socket has closed
// (a PostgreSQL restart) from a timer, which throws outside any caller and ends the process
// (porsager/postgres#1154, #1208). A pooled client reconnects before it writes.
//
// The client is replaced when a lock query fails or does not settle in time: postgres.js can also
// leave a connection that lost its socket unable to send again (a write pending at teardown is
// never flushed; its queries wait for the connect timeout, again and again), and a lock client
// stuck like that would stop every reconcile. Replacing it ends its session, which releases the
// locks it held, as losing the session to a restart does.
import type { Sql } from 'postgres';

export interface AdvisoryLocks {
  /** Takes the lock `key` without waiting: a release function, or null when someone holds it. */
  tryLock(key: string): Promise<(() => Promise<void>) | null>;
  close(): Promise<void>;
}

export interface AdvisoryLocksOptions {
  /** Makes a new one-connection client. */
  connect: () => Sql;
  /** A lock query that has not settled by then counts as failed (default 10 s). */
  timeoutMs?: number;
  onReplace?: (reason: unknown) => void;
}

export function createAdvisoryLocks(options: AdvisoryLocksOptions): AdvisoryLocks {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let client = options.connect();
  // Session locks are re-entrant within a session, so exclusion inside this process is ours.
  const held = new Set<string>();

  async function query(key: string, fn: 'pg_try_advisory_lock' | 'pg_advisory_unlock'): Promise<boolean> {
    const used = client;
    const pending = fn === 'pg_try_advisory_lock'
      ? used<{ ok: boolean }[]>`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as ok`
      : used<{ ok: boolean }[]>`select pg_advisory_unlock(hashtextextended(${key}, 0)) as ok`;
    let timer: NodeJS.Timeout | undefined;
    try {
      const rows = await Promise.race([
        pending,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${fn} did not settle within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return rows[0]?.ok === true;
    } catch (err) {
      pending.catch(() => undefined);
      if (client === used) {
        client = options.connect();
        options.onReplace?.(err);
        void used.end({ timeout: 0 }).catch(() => undefined);
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async tryLock(key) {
      if (held.has(key)) return null;
      held.add(key);
      try {
        if (!(await query(key, 'pg_try_advisory_lock'))) {
          held.delete(key);
          return null;
        }
      } catch (err) {
        held.delete(key);
        throw err;
      }
      return async () => {
        try {
          await query(key, 'pg_advisory_unlock');
        } finally {
          held.delete(key);
        }
      };
    },
    close: () => client.end({ timeout: 5 }),
  };
}
