// Dedicated addresses as resources (`pier ips`): allocating one to an app from the server's pools,
// releasing it, listing and describing them. Owner of the `ip_addresses` rows. An allocation is
// one transaction: the pool is locked (a transaction-scoped advisory lock, so concurrent
// allocations queue instead of retrying), the lowest free address is taken, and the row's primary
// key makes a duplicate impossible even without the lock. A release is refused while an endpoint
// binds the address, and starts its cool-down. Endpoints pick the app's addresses up on its next
// deploy (api/endpoint-bindings.ts).
import { and, asc, eq, gt, isNotNull, isNull, lte, or, sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, endpoints, ipAddresses, type App, type IpAddress, type IpFamily } from '../db/schema/index.js';
import { findApp, requireScope, type AuthContext } from './auth.js';
import { addressAt, canonicalAddress, type IpPool } from './ip-pool.js';
import { PierError } from './pier-error.js';
import type { PoolBindProblem } from './pool-preflight.js';
import type { Transactions, Txn } from './transactions.js';

export interface IpServiceOptions {
  db: Db;
  transactions: Transactions;
  pools: IpPool[];
  /** The edge's shared addresses (listed as shared; never allocated). */
  sharedAddresses: string[];
  cooldownMs: number;
  /** After a change that the app's next deploy picks up; tests read the clock from here. */
  now?: () => Date;
}

export interface IpRecord {
  address: string;
  family: IpFamily;
  kind: 'shared' | 'dedicated';
  pool: string | null;
  app: string | null;
  /**
   * shared: every app's; allocated: an app's; releasing: released with its deleted app, waiting
   * for the edges to stop serving it (reusableAt is the latest the cool-down can end); cooling:
   * released, not given out before reusableAt; free: released and cooled down.
   */
  state: 'shared' | 'allocated' | 'releasing' | 'cooling' | 'free';
  /** While releasing: the edges that have to confirm they stopped serving it. */
  awaitingEdges: string[];
  allocatedAt: string | null;
  releasedAt: string | null;
  reusableAt: string | null;
}

export interface PoolView {
  cidr: string;
  family: IpFamily;
  /** Usable addresses, as a decimal string (an IPv6 /64 holds more than a JSON number can). */
  size: string;
  allocated: number;
  /** Why the edge on the server's host cannot bind its addresses (start-up preflight), or null. */
  bindProblem: string | null;
}

export interface IpUse {
  app: string;
  port: number;
}

export interface IpFilter {
  family?: IpFamily | undefined;
  shared?: boolean | undefined;
  app?: string | undefined;
}

export function createIpService(options: IpServiceOptions) {
  const { db, transactions, pools } = options;
  const now = options.now ?? (() => new Date());

  function sharedRecords(): IpRecord[] {
    return options.sharedAddresses.map((address) => ({
      address,
      family: address.includes(':') ? 'ipv6' : 'ipv4',
      kind: 'shared',
      pool: null,
      app: null,
      state: 'shared',
      allocatedAt: null,
      releasedAt: null,
      reusableAt: null,
      awaitingEdges: [],
    }));
  }

  let bindProblems: PoolBindProblem[] = [];

  return {
    /** The preflight's findings (api/pool-preflight.ts), shown with the pools. */
    setBindProblems(problems: PoolBindProblem[]): void {
      bindProblems = problems;
    },

    /** The pools, with how many addresses each gives and whether the local edge can bind them. */
    async pools(): Promise<PoolView[]> {
      const counts = await db
        .select({ pool: ipAddresses.pool, n: sql<number>`count(*)::int` })
        .from(ipAddresses)
        .where(isNotNull(ipAddresses.appId))
        .groupBy(ipAddresses.pool);
      return pools.map((p) => {
        const problem = bindProblems.find((b) => b.pool === p.cidr);
        return {
          cidr: p.cidr,
          family: p.family,
          size: p.size.toString(),
          allocated: counts.find((c) => c.pool === p.cidr)?.n ?? 0,
          bindProblem: problem ? `${problem.errno} binding ${problem.address}; fix: ${problem.fix}` : null,
        };
      });
    },

    /** The org's dedicated addresses in use (only the app's for an app-bound token) and the shared ones. */
    async list(auth: AuthContext, filter: IpFilter = {}): Promise<IpRecord[]> {
      const app = filter.app ? await findApp(db, auth, filter.app) : null;
      const out: IpRecord[] = [];
      if (!app) out.push(...sharedRecords());
      if (filter.shared !== true) {
        const rows = await db
          .select({ ip: ipAddresses, appName: apps.name })
          .from(ipAddresses)
          .innerJoin(apps, eq(apps.id, ipAddresses.appId))
          .where(and(eq(apps.orgId, auth.orgId), app ? eq(apps.id, app.id) : auth.appId ? eq(apps.id, auth.appId) : undefined))
          .orderBy(asc(apps.name), asc(ipAddresses.family), asc(ipAddresses.allocatedAt));
        out.push(...rows.map((r) => record(r.ip, r.appName, now())));
      }
      return out.filter((r) => (filter.family ? r.family === filter.family : true) && (filter.shared === false ? r.kind === 'dedicated' : filter.shared ? r.kind === 'shared' : true));
    },

    /**
     * Gives the app a dedicated address of `family`; one per family: when it has one already, that
     * one is answered (`created: false`), so a script may run this again.
     */
    async allocate(auth: AuthContext, appName: string, family: IpFamily): Promise<{ ip: IpRecord; created: boolean }> {
      requireScope(auth, 'deploy');
      const found = await findApp(db, auth, appName);
      const candidates = pools.filter((p) => p.family === family);
      if (candidates.length === 0) {
        throw new PierError('E_NO_IP_POOL', `this server has no ${family === 'ipv4' ? 'IPv4' : 'IPv6'} pool to allocate from`, {
          status: 409,
          hint: `the operator starts the server with --ip-pool CIDR (or PIER_IP_POOLS); \`pier ips list\` shows what there is`,
        });
      }
      return transactions.run(async (t) => {
        const app = await lockApp(t.tx, found);
        const [held] = await t.tx
          .select()
          .from(ipAddresses)
          .where(and(eq(ipAddresses.appId, app.id), eq(ipAddresses.family, family)));
        if (held) return { ip: record(held, app.name, now()), created: false };
        for (const pool of candidates) {
          const row = await takeFromPool(t, pool, app, now(), 'allocate');
          if (row) return { ip: record(row, app.name, now()), created: true };
        }
        throw exhausted(family, candidates);
      });
    },

    /** Frees an app's dedicated address; refused while an endpoint binds it. */
    async release(auth: AuthContext, text: string): Promise<IpRecord> {
      requireScope(auth, 'deploy');
      const address = parseAddress(text);
      return transactions.run(async (t) => {
        // Locked first: a deploy reading the app's addresses waits for this (or this for it), so
        // the check below sees every endpoint that binds the address.
        const [row] = await t.tx
          .select({ ip: ipAddresses, app: apps })
          .from(ipAddresses)
          .innerJoin(apps, eq(apps.id, ipAddresses.appId))
          .where(and(eq(ipAddresses.address, address), eq(apps.orgId, auth.orgId)))
          .for('update', { of: ipAddresses });
        if (!row || (auth.appId !== null && auth.appId !== row.app.id)) throw notAllocated(address);
        const users = await usesOf(t.tx, address);
        if (users.length) {
          const list = users.map((u) => `${u.app}:${u.port}`).join(', ');
          throw new PierError('E_IP_IN_USE', `${address} is bound by endpoint${users.length === 1 ? '' : 's'} ${list}`, {
            status: 409,
            hint: `deploy ${row.app.name} with ${row.ip.family} = "shared" (or "none") on those endpoints, or without them, then release it`,
            details: { address, endpoints: users },
          });
        }
        const released = await releaseRow(t, row.ip, row.app, 'release', options.cooldownMs, now());
        return record(released, null, now());
      });
    },

    /** One address: its owner and state, and which endpoints bind it. */
    async describe(auth: AuthContext, text: string): Promise<IpRecord & { endpoints: IpUse[] }> {
      const address = parseAddress(text);
      const shared = sharedRecords().find((s) => s.address === address);
      if (shared) return { ...shared, endpoints: [] };
      const [row] = await db
        .select({ ip: ipAddresses, app: apps })
        .from(ipAddresses)
        .leftJoin(apps, eq(apps.id, ipAddresses.appId))
        .where(eq(ipAddresses.address, address));
      const mine = row?.app && row.app.orgId === auth.orgId && (auth.appId === null || auth.appId === row.app.id);
      // A cooling address is nobody's: its state is shown to whoever asks about it.
      if (!row || (row.app ? !mine : row.ip.orgId !== auth.orgId || auth.appId !== null)) throw notAllocated(address);
      return { ...record(row.ip, row.app?.name ?? null, now()), endpoints: row.app ? await usesOf(db, address) : [] };
    },
  };

  function parseAddress(text: string): string {
    const c = canonicalAddress(text);
    if (!c) throw new PierError('E_BAD_REQUEST', `"${text}" is not an IP address`, { status: 400, hint: 'name the address as `pier ips list` shows it, e.g. 203.0.113.7 or 2001:db8::7' });
    return c.address;
  }
}

export type IpService = ReturnType<typeof createIpService>;

/** The lowest usable address of the pool that is neither allocated nor cooling, taken for the app. */
async function takeFromPool(t: Txn, pool: IpPool, app: App, at: Date, reason: 'allocate' | 'first-deploy'): Promise<IpAddress | null> {
  await t.tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`pier.ip-pool:${pool.cidr}`}))`);
  const busy = await t.tx
    .select({ address: ipAddresses.address })
    .from(ipAddresses)
    .where(and(eq(ipAddresses.pool, pool.cidr), or(isNotNull(ipAddresses.appId), gt(ipAddresses.reusableAt, at))));
  const taken = new Set(busy.map((b) => b.address));
  // At most taken.size + 1 addresses to look at: one of them is free, or the pool is full.
  for (let i = 0n; i < pool.size && i <= BigInt(taken.size); i++) {
    const address = addressAt(pool, i);
    if (taken.has(address)) continue;
    const values = { address, family: pool.family, pool: pool.cidr, orgId: app.orgId, appId: app.id, allocatedAt: at, releasedAt: null, reusableAt: null, unbind: null };
    // A row left by a release (cooled down) is taken over; the where clause keeps a live one.
    const [row] = await t.tx
      .insert(ipAddresses)
      .values(values)
      .onConflictDoUpdate({ target: ipAddresses.address, set: values, setWhere: and(isNull(ipAddresses.appId), lte(ipAddresses.reusableAt, at)) })
      .returning();
    if (!row) continue;
    await t.record({
      orgId: app.orgId,
      appId: app.id,
      type: 'ip.allocated',
      reason,
      message:
      reason === 'first-deploy'
        ? `${address} (${pool.family}, pool ${pool.cidr}) allocated to ${app.name} on its deploy: its endpoints bind it`
        : `${address} (${pool.family}, pool ${pool.cidr}) allocated to ${app.name}; its endpoints bind it from the next deploy`,
      data: { address, family: pool.family, pool: pool.cidr },
    });
    return row;
  }
  return null;
}

/**
 * IPv6 first: an app deployed while the server has an IPv6 pool gets its own IPv6 in the deploy's
 * transaction (the caller holds the app's row lock), unless it has one. None free: E_POOL_EXHAUSTED.
 */
export async function ensureIpv6(t: Txn, pools: IpPool[], app: App, at: Date): Promise<void> {
  const v6 = pools.filter((p) => p.family === 'ipv6');
  if (v6.length === 0) return;
  const [held] = await t.tx.select({ address: ipAddresses.address }).from(ipAddresses).where(and(eq(ipAddresses.appId, app.id), eq(ipAddresses.family, 'ipv6')));
  if (held) return;
  for (const pool of v6) if (await takeFromPool(t, pool, app, at, 'first-deploy')) return;
  throw exhausted('ipv6', v6);
}

/** The app's dedicated address per family, locked against a release until the transaction ends. */
export async function addressesOf(tx: Db, appId: string): Promise<Partial<Record<IpFamily, string>>> {
  const rows = await tx.select({ address: ipAddresses.address, family: ipAddresses.family }).from(ipAddresses).where(eq(ipAddresses.appId, appId)).for('share');
  const out: Partial<Record<IpFamily, string>> = {};
  for (const r of rows) out[r.family] ??= r.address;
  return out;
}

/** Releases one address now: its cool-down starts at `at`. In the caller's transaction. */
export async function releaseRow(t: Txn, row: IpAddress, app: App, reason: 'release' | 'app-deleted', cooldownMs: number, at: Date): Promise<IpAddress> {
  const reusableAt = new Date(at.getTime() + cooldownMs);
  const [updated] = await t.tx.update(ipAddresses).set({ appId: null, releasedAt: at, reusableAt, unbind: null }).where(eq(ipAddresses.address, row.address)).returning();
  await t.record({
    orgId: app.orgId,
    appId: app.id,
    type: 'ip.released',
    reason,
    message: `${row.address} released${reason === 'app-deleted' ? ` with the app ${app.name}` : ` by ${app.name}`}; no app gets it before ${reusableAt.toISOString()}`,
    data: { address: row.address, family: row.family, pool: row.pool, reusableAt: reusableAt.toISOString() },
  });
  return updated ?? { ...row, appId: null, releasedAt: at, reusableAt, unbind: null };
}

/** The endpoints (of any app) that bind the address. */
async function usesOf(db: Db, address: string): Promise<IpUse[]> {
  const rows = await db
    .select({ app: apps.name, port: endpoints.port })
    .from(endpoints)
    .innerJoin(apps, eq(apps.id, endpoints.appId))
    .where(sql`${endpoints.bindings} @> ${JSON.stringify([address])}::jsonb`)
    .orderBy(asc(apps.name), asc(endpoints.port));
  return rows;
}

async function lockApp(tx: Db, app: App): Promise<App> {
  const [locked] = await tx.select().from(apps).where(and(eq(apps.id, app.id), isNull(apps.deletedAt))).for('no key update');
  if (!locked) throw new PierError('E_APP_NOT_FOUND', `app "${app.name}" was deleted`, { status: 404, hint: '`pier apps list` shows the apps' });
  return locked;
}

function exhausted(family: IpFamily, pools: IpPool[]): PierError {
  const sizes = pools.map((p) => `${p.cidr} (${p.size})`).join(', ');
  return new PierError('E_POOL_EXHAUSTED', `every ${family === 'ipv4' ? 'IPv4' : 'IPv6'} address is allocated or cooling down: ${sizes}`, {
    status: 409,
    hint: 'release an address no app needs (`pier ips release ADDRESS`), wait for released ones to cool down, or have the operator add a pool (--ip-pool)',
    details: { family, pools: pools.map((p) => p.cidr) },
  });
}

function notAllocated(address: string): PierError {
  return new PierError('E_IP_NOT_FOUND', `${address} is not allocated to any app this token can see`, { status: 404, hint: '`pier ips list` shows the addresses in use' });
}

function record(row: IpAddress, appName: string | null, at: Date): IpRecord {
  const released = row.appId === null;
  return {
    address: row.address,
    family: row.family,
    kind: 'dedicated',
    pool: row.pool,
    app: released ? null : appName,
    state: !released ? 'allocated' : row.reusableAt && row.reusableAt > at ? (row.unbind ? 'releasing' : 'cooling') : 'free',
    allocatedAt: row.allocatedAt.toISOString(),
    releasedAt: released ? (row.releasedAt?.toISOString() ?? null) : null,
    reusableAt: released ? (row.reusableAt?.toISOString() ?? null) : null,
    awaitingEdges: released && row.unbind ? row.unbind.edges.map((e) => e.name) : [],
  };
}
