// Environments as resources: made on the first deploy that names one (idempotent), listed,
// described, extended and destroyed. Destroying one deletes each of its apps (api/app-deleter.ts:
// instances, endpoints, addresses, app-bound tokens) and leaves a tombstone; destroying it again
// is a no-op that says so. A persistent or protected environment is destroyed only with `force`
// and its name repeated in `confirm`: the cleanups that deleted production were one flag away.
// Owner: this module owns the environments table; apps stay owned by the deploy service.
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, environments, type Environment } from '../db/schema/index.js';
import type { AppDeleter } from './app-deleter.js';
import { requireScope, type AuthContext } from './auth.js';
import { environmentOf, matchesPattern, PERSISTENT_NAMES } from './environment-names.js';
import { overrideFor, ttlMs } from './environment-overrides.js';
import { newId } from './ids.js';
import type { Manifest } from './manifest.js';
import { PierError } from './pier-error.js';
import type { Transactions, Txn } from './transactions.js';

/** A preview that names no TTL lives this long after its last deploy. */
export const DEFAULT_PREVIEW_TTL_MS = 72 * 3_600_000;

export interface EnvironmentRequest {
  /** Milliseconds the preview lives from now (its expiry moves on each deploy that sets it). */
  ttlMs?: number | undefined;
  base?: string | undefined;
  branch?: string | undefined;
  commit?: string | undefined;
  pr?: number | undefined;
}

export interface DestroyResult {
  environment: string;
  /** False when there was nothing to destroy (already destroyed, or never made). */
  destroyed: boolean;
  apps: { name: string; instances: number; ports: number[]; addresses: string[]; containersRemaining: number | null }[];
}

export interface EnvironmentServiceOptions {
  db: Db;
  transactions: Transactions;
  deleter: AppDeleter;
  now?: () => Date;
}

export function createEnvironmentService(options: EnvironmentServiceOptions) {
  const { db, transactions } = options;
  const now = options.now ?? (() => new Date());

  async function live(orgId: string, name: string): Promise<Environment | undefined> {
    const [row] = await db.select().from(environments).where(and(eq(environments.orgId, orgId), eq(environments.name, name), isNull(environments.destroyedAt)));
    return row;
  }

  return {
    /**
     * Within a deploy's transaction: the request's environment, made on first use. A deploy that
     * sets a TTL (or an override's) moves a preview's expiry to now + TTL.
     */
    ensure: ensureEnvironment,

    async list(auth: AuthContext): Promise<(Environment & { apps: string[] })[]> {
      requireScope(auth, 'read');
      const rows = await db.select().from(environments).where(and(eq(environments.orgId, auth.orgId), isNull(environments.destroyedAt))).orderBy(asc(environments.name));
      const appRows = await db.select({ name: apps.name, environment: apps.environment }).from(apps).where(and(eq(apps.orgId, auth.orgId), isNull(apps.deletedAt))).orderBy(asc(apps.name));
      const visible = rows.filter((r) => matches(auth, r.name));
      // Apps deployed before environments existed belong to production, which may have no row yet.
      if (!visible.some((r) => r.name === 'production') && appRows.some((a) => a.environment === 'production') && matches(auth, 'production')) {
        visible.unshift(implicitProduction(auth.orgId));
      }
      return visible.map((r) => ({ ...r, apps: appRows.filter((a) => a.environment === r.name).map((a) => a.name) }));
    },

    async get(auth: AuthContext, name: string): Promise<Environment> {
      requireScope(auth, 'read');
      const row = (await live(auth.orgId, name)) ?? (name === 'production' ? implicitProduction(auth.orgId) : undefined);
      if (!row || !matches(auth, name)) throw environmentNotFound(name);
      return row;
    },

    async extend(auth: AuthContext, name: string, ttl: number): Promise<Environment> {
      requireScope(auth, 'deploy');
      return transactions.run(async (t) => {
        const [row] = await t.tx.select().from(environments).where(and(eq(environments.orgId, auth.orgId), eq(environments.name, name), isNull(environments.destroyedAt))).for('update');
        if (!row || !matches(auth, name)) throw environmentNotFound(name);
        if (row.kind !== 'preview') throw new PierError('E_BAD_REQUEST', `${name} is a persistent environment: it does not expire`, { status: 400, hint: 'only previews have a TTL' });
        const at = now();
        const expiresAt = new Date(at.getTime() + ttl);
        const [updated] = await t.tx.update(environments).set({ expiresAt, warnedAt: null, updatedAt: at }).where(eq(environments.id, row.id)).returning();
        await t.record({ orgId: auth.orgId, type: 'environment.extended', reason: 'extend', message: `environment ${name} now expires ${expiresAt.toISOString()}`, data: { environment: name, expiresAt: expiresAt.toISOString(), by: auth.tokenId } });
        return updated ?? row;
      });
    },

    /** Destroys the environment's apps and then the environment; a second call finds nothing and says so. */
    async destroy(auth: AuthContext, name: string, opts: { force?: boolean; confirm?: string; reason?: string; waitMs: number }): Promise<DestroyResult> {
      requireScope(auth, 'deploy');
      if (!matches(auth, name)) throw environmentNotFound(name);
      const row = (await live(auth.orgId, name)) ?? (name === 'production' ? implicitProduction(auth.orgId) : undefined);
      const appRows = await db.select().from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, name), isNull(apps.deletedAt))).orderBy(asc(apps.name));
      if (!row && appRows.length === 0) return { environment: name, destroyed: false, apps: [] };
      const guarded = row ? row.kind === 'persistent' || row.protected : true;
      if (guarded && (!opts.force || opts.confirm !== name)) {
        throw new PierError('E_ENVIRONMENT_PROTECTED', `${name} is a ${row?.protected ? 'protected' : 'persistent'} environment: destroying it needs force and its name again`, {
          status: 409,
          hint: `\`pier env destroy ${name} --force --confirm ${name}\` (nothing was changed)`,
        });
      }
      const inEnv: AuthContext = { ...auth, environment: name };
      const done: DestroyResult['apps'] = [];
      for (const app of appRows) {
        const r = await options.deleter.delete(inEnv, app.name, opts.waitMs).catch((err: unknown) => {
          // Deleted by someone else in between: it is gone, which is what was asked.
          if (err instanceof PierError && err.code === 'E_APP_NOT_FOUND') return null;
          throw err;
        });
        if (r) done.push({ name: app.name, instances: r.instances, ports: r.ports, addresses: r.addresses, containersRemaining: r.containersRemaining });
      }
      await transactions.run(async (t) => {
        const at = now();
        if (row && !row.id.startsWith('implicit')) await t.tx.update(environments).set({ destroyedAt: at, updatedAt: at }).where(and(eq(environments.id, row.id), isNull(environments.destroyedAt)));
        await t.record({
          orgId: auth.orgId,
          type: 'environment.destroyed',
          reason: opts.reason ?? 'destroy',
          message: `environment ${name} destroyed: ${done.length} app${done.length === 1 ? '' : 's'} deleted${done.length ? ` (${done.map((a) => a.name).join(', ')})` : ''}`,
          data: { environment: name, apps: done.map((a) => a.name), by: auth.tokenId },
        });
      });
      return { environment: name, destroyed: true, apps: done };
    },
  };
}

export type EnvironmentService = ReturnType<typeof createEnvironmentService>;

/**
 * Within a deploy's transaction: the request's environment, made on first use. A deploy that
 * sets a TTL (or an override's) moves a preview's expiry to now + TTL.
 */
export async function ensureEnvironment(t: Txn, auth: AuthContext, request: EnvironmentRequest, overrideTtlMs: number | undefined, at: Date): Promise<Environment> {
    const name = environmentOf(auth);
    const [found] = await t.tx
      .select()
      .from(environments)
      .where(and(eq(environments.orgId, auth.orgId), eq(environments.name, name), isNull(environments.destroyedAt)))
      .for('update');
    const ttl = request.ttlMs ?? overrideTtlMs;
    if (found) {
      if (found.kind !== 'preview') return found;
      const changes = {
        ...(ttl !== undefined ? { expiresAt: new Date(at.getTime() + ttl), warnedAt: null } : {}),
        ...(request.branch !== undefined ? { branch: request.branch } : {}),
        ...(request.commit !== undefined ? { commit: request.commit } : {}),
        ...(request.pr !== undefined ? { pr: request.pr } : {}),
      };
      if (Object.keys(changes).length === 0) return found;
      const [updated] = await t.tx.update(environments).set({ ...changes, updatedAt: at }).where(eq(environments.id, found.id)).returning();
      return updated ?? found;
    }
    const persistent = PERSISTENT_NAMES.has(name);
    if (persistent && ttl !== undefined && request.ttlMs !== undefined) {
      throw new PierError('E_BAD_REQUEST', `${name} is a persistent environment: it has no TTL`, { status: 400, hint: 'leave --ttl out, or deploy to a preview such as pr-42' });
    }
    const values = {
      id: newId('env'),
      orgId: auth.orgId,
      name,
      kind: persistent ? ('persistent' as const) : ('preview' as const),
      protected: name === 'production',
      base: persistent ? null : (request.base ?? 'staging'),
      expiresAt: persistent ? null : new Date(at.getTime() + (ttl ?? DEFAULT_PREVIEW_TTL_MS)),
      branch: request.branch ?? null,
      commit: request.commit ?? null,
      pr: request.pr ?? null,
    };
    const [row] = await t.tx.insert(environments).values(values).onConflictDoNothing().returning();
    if (!row) {
      // Another deploy made it at the same moment and has committed.
      const [again] = await t.tx.select().from(environments).where(and(eq(environments.orgId, auth.orgId), eq(environments.name, name), isNull(environments.destroyedAt)));
      if (!again) throw new Error(`environment ${name} vanished`);
      return again;
    }
    await t.record({
      orgId: auth.orgId,
      type: 'environment.created',
      reason: 'deploy',
      message: `environment ${name} created (${row.kind}${row.expiresAt ? `, expires ${row.expiresAt.toISOString()}` : ''})`,
      data: { environment: name, kind: row.kind, expiresAt: row.expiresAt?.toISOString() ?? null, branch: row.branch, commit: row.commit, pr: row.pr, by: auth.tokenId },
    });
    return row;
  }

/** The TTL the manifest's override for the request's environment sets, if any. */
export function declaredTtl(manifest: Manifest, auth: AuthContext): number | undefined {
  const name = environmentOf(auth);
  const applied = overrideFor(manifest.overrides ?? {}, name, !PERSISTENT_NAMES.has(name));
  const ttl = applied ? manifest.overrides?.[applied]?.ttl : undefined;
  return ttl ? ttlMs(ttl) : undefined;
}

function matches(auth: AuthContext, name: string): boolean {
  return matchesPattern(name, auth.environments);
}

function implicitProduction(orgId: string): Environment {
  return { id: 'implicit-production', orgId, name: 'production', kind: 'persistent', protected: true, base: null, expiresAt: null, warnedAt: null, branch: null, commit: null, pr: null, createdAt: new Date(0), updatedAt: new Date(0), destroyedAt: null };
}

export function environmentNotFound(name: string): PierError {
  return new PierError('E_ENVIRONMENT_NOT_FOUND', `there is no environment named "${name}"`, { status: 404, hint: '`pier env list` shows the environments this token can see' });
}
