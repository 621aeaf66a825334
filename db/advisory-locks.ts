// Cross-process locks by name. On PostgreSQL every advisory lock of a server lives on one
// dedicated session (its own connection, outside the query pool), so held locks can never starve
// the pool; when that session dies every lock dies with it, and each holder hears it through its
// AbortSignal at once. The embedded database belongs to one process: in-process locks suffice.
import type { Sql } from 'postgres';

export interface HeldLock {
  key: string;
  /** Aborts when the lock is lost (its session closed or stopped answering): stop acting on it. */
  signal: AbortSignal;
  release(): Promise<void>;
}

/** The lock session as /metrics shows it. */
export interface LockSessionStatus {
  kind: 'postgres' | 'local';
  /** The session answered a probe just now (always true in-process). */
  up: boolean;
  held: number;
  /** Times the session was lost (every lock on it with it) since the server started. */
  losses: number;
}

export interface AdvisoryLocks {
  /** Takes the lock without waiting: null when another server, or this one, already holds it. */
  tryLock(key: string): Promise<HeldLock | null>;
  /** Probes the session (within a second) and counts the locks held. */
  status(): Promise<LockSessionStatus>;
  /** Releases every lock and closes the session. */
  close(): Promise<void>;
}

/** Thrown as the signal's reason when a lock is lost. */
export class LockLostError extends Error {
  constructor(key: string, why: string) {
    super(`lock ${key} lost: ${why}`);
    this.name = 'LockLostError';
  }
}

export interface PostgresLocksOptions {
  /** Makes the session's client; called again after the session is lost. */
  connect: (onClose: () => void) => Sql;
  /** While locks are held, the session is probed this often (ms); default 2000. */
  heartbeatMs?: number;
  /** A probe unanswered for this long (ms) counts as a lost session; default 5000. */
  heartbeatTimeoutMs?: number;
  /** Told when the session is lost (for the server's log). */
  onLost?: (why: string, locks: number) => void;
}

interface Entry {
  controller: AbortController;
}

export function createPostgresLocks(options: PostgresLocksOptions): AdvisoryLocks {
  const heartbeatMs = options.heartbeatMs ?? 2_000;
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5_000;
  const held = new Map<string, Entry>();
  /** Grows each time the session is lost: a lock taken on an older session is worthless. */
  let generation = 0;
  let closed = false;
  let client = connect();
  let heartbeat: NodeJS.Timeout | undefined;

  function connect(): Sql {
    const gen = generation;
    // onClose fires for this client's connection only; a replaced client's late close is ignored.
    return options.connect(() => {
      if (gen === generation) lose('the lock session closed');
    });
  }

  function lose(why: string): void {
    generation++;
    const count = held.size;
    for (const [key, entry] of held) entry.controller.abort(new LockLostError(key, why));
    held.clear();
    stopHeartbeat();
    if (count > 0 && !closed) options.onLost?.(why, count);
  }

  /** Drops the current session (it may be half dead) and starts a new one for later locks. */
  function recycle(why: string): void {
    const old = client;
    lose(why);
    if (closed) return;
    client = connect();
    void old.end({ timeout: 0 }).catch(() => undefined);
  }

  function startHeartbeat(): void {
    if (heartbeat || closed) return;
    heartbeat = setInterval(() => void probe(), heartbeatMs);
    heartbeat.unref();
  }

  function stopHeartbeat(): void {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
  }

  async function probe(): Promise<void> {
    if (held.size === 0) return stopHeartbeat();
    const gen = generation;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), heartbeatTimeoutMs);
    });
    const answer = client`select 1`.then(
      () => 'ok' as const,
      () => 'failed' as const,
    );
    const result = await Promise.race([answer, timeout]);
    clearTimeout(timer);
    if (gen !== generation || closed) return;
    if (result === 'timeout') recycle(`the lock session did not answer within ${heartbeatTimeoutMs} ms`);
    else if (result === 'failed') recycle('the lock session failed a probe');
  }

  async function unlock(sql: Sql, key: string): Promise<void> {
    await sql`select pg_advisory_unlock(hashtextextended(${key}, 0))`;
  }

  return {
    async tryLock(key) {
      if (closed || held.has(key)) return null;
      const gen = generation;
      const sql = client;
      // hashtextextended: a 64-bit key from the name, so distinct names practically never collide.
      const [row] = await sql`select pg_try_advisory_lock(hashtextextended(${key}, 0)) as locked`;
      if (!row?.locked) return null;
      if (gen !== generation || closed || held.has(key)) {
        // The session changed while we asked (or another caller won in between): the lock is
        // on a session we no longer trust, or a duplicate. Let it go and report "not taken".
        await unlock(sql, key).catch(() => undefined);
        return null;
      }
      const entry: Entry = { controller: new AbortController() };
      held.set(key, entry);
      startHeartbeat();
      return {
        key,
        signal: entry.controller.signal,
        async release() {
          if (held.get(key) !== entry) return;
          held.delete(key);
          if (held.size === 0) stopHeartbeat();
          if (gen !== generation) return;
          // A failed unlock leaves the lock on a session we cannot vouch for: start a new one.
          await unlock(sql, key).catch(() => recycle('an unlock failed'));
        },
      };
    },
    async status() {
      const up =
        !closed &&
        (await Promise.race([
          client`select 1`.then(
            () => true,
            () => false,
          ),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1_000).unref()),
        ]));
      return { kind: 'postgres', up, held: held.size, losses: generation };
    },
    async close() {
      closed = true;
      lose('the server is stopping');
      await client.end({ timeout: 5 });
    },
  };
}

/** Locks inside one process, for the embedded database (one process owns it). */
export function createLocalLocks(): AdvisoryLocks {
  const held = new Map<string, AbortController>();
  return {
    async tryLock(key) {
      if (held.has(key)) return null;
      const controller = new AbortController();
      held.set(key, controller);
      return {
        key,
        signal: controller.signal,
        async release() {
          if (held.get(key) === controller) held.delete(key);
        },
      };
    },
    async status() {
      return { kind: 'local', up: true, held: held.size, losses: 0 };
    },
    async close() {
      for (const [key, c] of held) c.abort(new LockLostError(key, 'the server is stopping'));
      held.clear();
    },
  };
}
