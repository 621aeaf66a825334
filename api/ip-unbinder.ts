// Deleting an app releases its addresses only after the edges stopped serving them (issue 16). At
// the delete, an address one of the app's endpoints bound is released with the list of edges that
// were connected (live) then; the cool-down starts once each of them has reported a snapshot built
// after the delete in which no listener binds the address. An edge that never says so (it went
// away, or cannot unbind) is waited for until a bound, then named in an `ip.unbind_unconfirmed`
// event, and the cool-down starts anyway: an address is never held forever by a dead edge. An
// edge that was not connected at the delete is not waited for: when it reconnects it applies the
// current snapshot, which has no endpoint on the address.
//
// The unbinder checks after each edge report (poke) and on a timer (for the bound), in one
// transaction per address with the row locked, so two API servers finish an address once.
import type { Logger } from 'pino';
import { and, eq, isNotNull, isNull } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { ipAddresses, type App, type IpAddress, type IpUnbind } from '../db/schema/index.js';
import { canonicalAddress } from './ip-pool.js';
import { releaseRow } from './ip-service.js';
import { readEdges, type SeenEdge } from './served-state.js';
import type { Transactions, Txn } from './transactions.js';

export interface ReleaseOptions {
  cooldownMs: number;
  unbindWaitMs: number;
  at: Date;
  /** The addresses the app's endpoints bound when it was deleted. */
  bound: ReadonlySet<string>;
}

/**
 * Releases every address of the app being deleted, in the caller's transaction: one no endpoint
 * bound (or with no edge connected) cools down at once (`ip.released`); one an endpoint bound
 * waits for the connected edges first (`ip.releasing`).
 */
export async function releaseDeletedAppAddresses(t: Txn, app: App, options: ReleaseOptions): Promise<string[]> {
  const { at, cooldownMs, unbindWaitMs } = options;
  const rows = await t.tx.select().from(ipAddresses).where(eq(ipAddresses.appId, app.id)).for('update');
  if (rows.length === 0) return [];
  const seen = await readEdges(t.tx);
  const live = seen.filter((e) => e.live).map((e) => ({ id: e.id, name: e.name }));
  const away = seen.filter((e) => !e.live).map((e) => ({ id: e.id, name: e.name }));
  for (const row of rows) {
    if (!options.bound.has(row.address) || live.length === 0) {
      await releaseRow(t, row, app, 'app-deleted', cooldownMs, at);
      continue;
    }
    const by = new Date(at.getTime() + unbindWaitMs);
    const unbind: IpUnbind = { app: { id: app.id, name: app.name }, edges: live, by: by.toISOString() };
    // reusable_at at its latest until the edges confirm (then it moves to confirmation + cool-down).
    await t.tx
      .update(ipAddresses)
      .set({ appId: null, releasedAt: at, reusableAt: new Date(by.getTime() + cooldownMs), unbind })
      .where(eq(ipAddresses.address, row.address));
    await t.record({
      orgId: app.orgId,
      appId: app.id,
      type: 'ip.releasing',
      reason: 'app-deleted',
      message: `${row.address} released with the app ${app.name}: its cool-down starts once ${names(live)} stopped serving it (at most ${Math.round(unbindWaitMs / 1000)} s)${
        away.length ? `; not waited for, as not connected: ${names(away)}` : ''
      }`,
      data: { address: row.address, family: row.family, pool: row.pool, edges: live, notConnected: away, by: by.toISOString() },
    });
  }
  return rows.map((r) => r.address);
}

/** Why an edge has not (yet) confirmed it stopped serving the address; null when it has. */
export function notConfirmed(address: string, releasedAt: Date, edge: SeenEdge | undefined): string | null {
  if (!edge) return 'has no report on record';
  const r = edge.report;
  const binds = r.endpoints.some((e) => e.listeners.some((l) => canonicalAddress(l.address)?.address === address));
  // A snapshot version is the time it was built (api/edge-feed.ts): one built after the delete has
  // none of the app's endpoints, so an edge serving it will not bind the address later.
  const why = binds ? 'still binds it' : (r.applied ?? 0) < releasedAt.getTime() ? `has not applied a snapshot built since the delete (it serves ${r.applied ?? 'none'})` : null;
  if (why === null) return null;
  return edge.live ? why : `${why}, and stopped reporting ${Math.round(edge.ageMs / 1000)} s ago`;
}

export interface IpUnbinderOptions {
  db: Db;
  transactions: Transactions;
  log: Logger;
  cooldownMs: number;
  /** How often the bound is looked at without a report (default 5 s). */
  intervalMs?: number;
  now?: () => Date;
}

export interface IpUnbinder {
  /** Looks at every address waiting for the edges; answers how many it finished. */
  check(): Promise<number>;
  /** Checks soon (after an edge report); calls during a check are gathered into the next. */
  poke(): void;
  start(): void;
  close(): void;
}

export function createIpUnbinder(options: IpUnbinderOptions): IpUnbinder {
  const { db, transactions } = options;
  const log = options.log.child({ component: 'ip-unbinder' });
  const now = options.now ?? (() => new Date());
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let again = false;
  let lastError: string | null = null;

  async function check(): Promise<number> {
    const waiting = await db.select({ address: ipAddresses.address }).from(ipAddresses).where(and(isNull(ipAddresses.appId), isNotNull(ipAddresses.unbind)));
    if (waiting.length === 0) return 0;
    const seen = await readEdges(db);
    let finished = 0;
    for (const { address } of waiting) if (await finish(address, seen)) finished++;
    return finished;
  }

  /** Starts the address's cool-down when every awaited edge confirmed, or the wait is over. */
  async function finish(address: string, seen: SeenEdge[]): Promise<boolean> {
    return transactions.run(async (t) => {
      const [row] = await t.tx
        .select()
        .from(ipAddresses)
        .where(and(eq(ipAddresses.address, address), isNull(ipAddresses.appId), isNotNull(ipAddresses.unbind)))
        .for('update', { skipLocked: true });
      if (!row?.unbind || !row.releasedAt) return false;
      const unbind = row.unbind;
      const at = now();
      const pending = unbind.edges
        .map((e) => ({ ...e, why: notConfirmed(row.address, row.releasedAt as Date, seen.find((s) => s.id === e.id)) }))
        .filter((e): e is { id: string; name: string; why: string } => e.why !== null);
      if (pending.length && at < new Date(unbind.by)) return false;
      await start(t, row, unbind, pending, at);
      return true;
    });
  }

  async function start(t: Txn, row: IpAddress, unbind: IpUnbind, pending: { id: string; name: string; why: string }[], at: Date): Promise<void> {
    const reusableAt = new Date(at.getTime() + options.cooldownMs);
    await t.tx.update(ipAddresses).set({ reusableAt, unbind: null }).where(eq(ipAddresses.address, row.address));
    const data = { address: row.address, family: row.family, pool: row.pool, reusableAt: reusableAt.toISOString(), edges: unbind.edges };
    const base = { orgId: row.orgId ?? '', appId: unbind.app.id };
    if (pending.length === 0) {
      await t.record({
        ...base,
        type: 'ip.released',
        reason: 'edges-confirmed',
        message: `${row.address} released with the app ${unbind.app.name}: ${names(unbind.edges)} stopped serving it; no app gets it before ${reusableAt.toISOString()}`,
        data,
      });
      return;
    }
    await t.record({
      ...base,
      type: 'ip.unbind_unconfirmed',
      reason: 'timeout',
      message: `${row.address} (released with the app ${unbind.app.name}): ${pending.map((p) => `edge "${p.name}" ${p.why}`).join('; ')}, at ${unbind.by}; the cool-down starts anyway, no app gets it before ${reusableAt.toISOString()}. If that edge still serves it, restart it or fix its link to the API (\`pier edges\`)`,
      data: { ...data, unconfirmed: pending },
    });
  }

  function run(): void {
    if (running) {
      again = true;
      return;
    }
    running = check()
      .then((n) => {
        if (n) log.info({ finished: n }, 'released addresses start their cool-down');
        lastError = null;
      })
      .catch((err: unknown) => {
        // The next tick tries again; the addresses stay held meanwhile, which is the safe side.
        const message = (err as Error).message;
        if (message !== lastError) log.warn({ err }, 'released addresses not checked; retrying');
        lastError = message;
      })
      .finally(() => {
        running = null;
        if (again) {
          again = false;
          run();
        }
      });
  }

  return {
    check,
    poke: run,
    start() {
      timer ??= setInterval(run, options.intervalMs ?? 5_000);
      timer.unref();
    },
    close() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

function names(list: { name: string }[]): string {
  return list.map((e) => `edge "${e.name}"`).join(', ');
}
