// Bearer-token authentication and scope checks. Only token hashes are stored; a token bound to
// one app sees every other app as "not found".
import type { MiddlewareHandler } from 'hono';
import { and, desc, eq, gt, isNotNull, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, tokens, type App, type TokenScope } from '../db/schema/index.js';
import { ENVIRONMENT_HEADER, environmentOf, matchesPattern, requestEnvironment } from './environment-names.js';
import { PierError } from './pier-error.js';
import { hashTokenSecret } from './token-secret.js';

export interface AuthContext {
  tokenId: string;
  /** The token's name, for the audit trail. */
  tokenName?: string | undefined;
  orgId: string;
  scope: TokenScope;
  /** Set when the token is bound to one app. */
  appId: string | null;
  /** The environment the request acts in (`Pier-Env` header; production when unset): app names resolve within it. */
  environment?: string | undefined;
  /** The token's environment pattern (`pr-*`), when it is bound to environments. */
  environments?: string | null | undefined;
}

export type ApiEnv = { Variables: { auth: AuthContext } };

/** What each scope may do besides itself. */
const GRANTS: Record<TokenScope, readonly TokenScope[]> = {
  admin: ['admin', 'deploy', 'exec', 'read', 'edge', 'connect'],
  deploy: ['deploy', 'read'],
  // A shell in the container reaches its ports already; a deploy token (CI) opens no tunnels.
  exec: ['exec', 'read', 'connect'],
  connect: ['connect', 'read'],
  read: ['read'],
  edge: ['edge'],
};

export function authenticate(db: Db): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1]) {
      throw new PierError('E_UNAUTHENTICATED', 'this request carries no API token', {
        status: 401,
        hint: 'send "Authorization: Bearer <token>"; `pier server` writes an admin token to <data dir>/admin-token',
      });
    }
    const hash = hashTokenSecret(m[1]);
    // A rotated token's old secret works on until the overlap the rotation gave it ends.
    const [row] = await db
      .select()
      .from(tokens)
      .where(and(or(eq(tokens.hash, hash), and(eq(tokens.previousHash, hash), gt(tokens.previousValidUntil, sql`now()`))), isNull(tokens.revokedAt)))
      .limit(1);
    if (!row || (row.expiresAt && row.expiresAt.getTime() <= Date.now())) {
      throw new PierError('E_UNAUTHENTICATED', 'the API token is unknown, revoked or expired', {
        status: 401,
        hint: 'ask an admin for a new token, or use the one in <data dir>/admin-token',
      });
    }
    const environment = requestEnvironment(c.req.header(ENVIRONMENT_HEADER), row.environments);
    c.set('auth', { tokenId: row.id, tokenName: row.name, orgId: row.orgId, scope: row.scope, appId: row.appId, environment, environments: row.environments });
    noteUse(db, row.id, row.lastUsedAt);
    await next();
  };
}

/** When each token's use was last written: at most one write per token per minute. */
const lastWritten = new Map<string, number>();
const USE_WRITE_MS = 60_000;

/** Keeps `last_used_at` roughly current (`pier tokens list` shows it) without a write per request. */
function noteUse(db: Db, tokenId: string, lastUsedAt: Date | null): void {
  const now = Date.now();
  const last = Math.max(lastWritten.get(tokenId) ?? 0, lastUsedAt?.getTime() ?? 0);
  if (now - last < USE_WRITE_MS) return;
  lastWritten.set(tokenId, now);
  if (lastWritten.size > 10_000) lastWritten.clear();
  db.update(tokens)
    .set({ lastUsedAt: new Date(now) })
    .where(eq(tokens.id, tokenId))
    .then(
      () => undefined,
      () => lastWritten.delete(tokenId),
    );
}

export function requireScope(auth: AuthContext, scope: TokenScope): void {
  if (!GRANTS[auth.scope].includes(scope)) {
    throw new PierError('E_FORBIDDEN', `this token has scope "${auth.scope}", and this needs "${scope}"`, {
      status: 403,
      hint: `use a token with the "${scope}" scope`,
    });
  }
}

/** The live app named `name` in the token's org, or E_APP_NOT_FOUND (also for apps the token may not see). */
export async function findApp(db: Db, auth: AuthContext, name: string): Promise<App> {
  const [app] = await db
    .select()
    .from(apps)
    .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, name), isNull(apps.deletedAt)))
    .limit(1);
  if (!app || (auth.appId !== null && auth.appId !== app.id)) throw appNotFound(name);
  return app;
}

/**
 * For reading an app's record (its events), deleted apps included: by id (`app_…`, live or
 * deleted), or with `deleted` the most recently deleted app of that name, else the live one.
 */
export async function findAppForAudit(db: Db, auth: AuthContext, nameOrId: string, deleted: boolean): Promise<App> {
  if (!nameOrId.startsWith('app_') && !deleted) return findApp(db, auth, nameOrId);
  const [app] = await db
    .select()
    .from(apps)
    .where(and(eq(apps.orgId, auth.orgId), nameOrId.startsWith('app_') ? eq(apps.id, nameOrId) : and(eq(apps.environment, environmentOf(auth)), eq(apps.name, nameOrId), isNotNull(apps.deletedAt))))
    .orderBy(desc(apps.deletedAt))
    .limit(1);
  // By id it may be an app of any environment: one the token may not act in is not found.
  if (!app || (auth.appId !== null && auth.appId !== app.id) || !matchesPattern(app.environment, auth.environments)) {
    if (!deleted) throw appNotFound(nameOrId);
    throw new PierError('E_APP_NOT_FOUND', `no deleted app is named "${nameOrId}"`, { status: 404, hint: '`pier apps list --deleted` shows deleted apps and their ids' });
  }
  return app;
}

export function appNotFound(name: string): PierError {
  return new PierError('E_APP_NOT_FOUND', `there is no app named "${name}"`, {
    status: 404,
    hint: '`pier apps list` shows the apps this token can see (`--deleted`: the deleted ones)',
  });
}
