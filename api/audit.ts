// The audit trail: every call that changes something (POST, PUT, PATCH, DELETE under /v1) is an
// `audit.request` event once it is answered, with who (the token's id, name and scope), from where
// (the client's address), what (method, route, the app, the arguments with secrets left out),
// the outcome (status, error code) and how long it took. Events outlive their app, so the trail
// of a deleted app stays readable (`pier audit --app app_…`). Edge reports are not audited: they
// are the edges' heartbeat, not someone's action. A trail that cannot be written is logged, and
// the call's answer stands.
import type { IncomingMessage } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps } from '../db/schema/index.js';
import type { ApiEnv } from './auth.js';
import { environmentOf } from './environment-names.js';
import type { EventLog } from './event-log.js';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const NOT_AUDITED = new Set(['/v1/edge/report']);
/** Argument names whose values never go into the trail. */
const SECRET = /secret|password|passwd|token|key|credential|auth|env/i;
const MAX_VALUE = 200;
/** Routes whose bodies hold secret values (api/routes/secrets.ts). */
const SECRET_ROUTE = /^\/v1\/apps\/[^/]+\/secrets/;

export function audit(options: { db: Db; events: EventLog; log: Logger }): MiddlewareHandler<ApiEnv> {
  const { db, events, log } = options;
  return async (c, next) => {
    if (!MUTATING.has(c.req.method) || NOT_AUDITED.has(c.req.path)) return next();
    const started = performance.now();
    await next();
    const auth = c.get('auth');
    if (!auth) return;
    const durationMs = Math.round(performance.now() - started);
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    const source = incoming?.socket?.remoteAddress ?? 'unknown';
    // JSON bodies only (a build's context is a tar stream, read by its route); parsed once by Hono.
    const body: unknown = (c.req.header('content-type') ?? '').includes('application/json') ? await c.req.json().catch(() => null) : null;
    const appName = appOf(c.req.path, body);
    const status = c.res.status;
    const errorCode = status >= 400 ? await c.res.clone().json().then((b: unknown) => (b as { error?: { code?: string } }).error?.code ?? null, () => null) : null;
    const route = routeOf(c.req.method, c.req.path);
    try {
      const appId = appName ? await appIdOf(db, auth.orgId, appName, environmentOf(auth)) : null;
      await events.record({
        orgId: auth.orgId,
        appId,
        type: 'audit.request',
        reason: errorCode ?? String(status),
        message: `${auth.tokenName ?? 'token'} (${auth.tokenId}) from ${source}: ${c.req.method} ${c.req.path} → ${status}${errorCode ? ` ${errorCode}` : ''} in ${durationMs} ms`,
        data: {
          kind: KINDS[route] ?? route,
          token: { id: auth.tokenId, name: auth.tokenName ?? null, scope: auth.scope },
          source,
          method: c.req.method,
          path: c.req.path,
          route,
          app: appName,
          environment: environmentOf(auth),
          status,
          errorCode,
          durationMs,
          // A secret's route carries values in any field: none of its arguments are kept.
          args: SECRET_ROUTE.test(c.req.path)
            ? { '(secrets)': '(redacted)' }
            : { ...redacted(c.req.query()), ...(body && typeof body === 'object' ? redacted(body as Record<string, unknown>) : {}) },
        },
      });
    } catch (err) {
      log.warn({ err, route, status }, 'audit event not recorded');
    }
  };
}

/** What the call was, in a word scripts can filter on. */
const KINDS: Record<string, string> = {
  'POST /v1/deploys': 'deploy',
  'POST /v1/builds': 'build',
  'POST /v1/apps/:app/rollback': 'rollback',
  'POST /v1/apps/:app/scale': 'scale',
  'DELETE /v1/apps/:app': 'app.delete',
  'POST /v1/apps/:app/instances/:instance/exec': 'exec',
  'POST /v1/tokens': 'token.create',
  'DELETE /v1/tokens/:id': 'token.revoke',
  'POST /v1/tokens/:id/rotate': 'token.rotate',
};

/** The route's pattern: the path with its names and ids as parameters. */
function routeOf(method: string, path: string): string {
  const pattern = path
    .replace(/^\/v1\/apps\/[^/]+/, '/v1/apps/:app')
    .replace(/\/instances\/[^/]+/, '/instances/:instance')
    .replace(/^\/v1\/tokens\/[^/]+/, '/v1/tokens/:id');
  return `${method} ${pattern}`;
}

/** The app a call concerns: in its path, or the manifest it deploys. */
function appOf(path: string, body: unknown): string | null {
  const inPath = /^\/v1\/apps\/([^/]+)/.exec(path)?.[1];
  if (inPath) return decodeURIComponent(inPath);
  const b = body as { manifest?: unknown; app?: unknown } | null;
  if (typeof b?.app === 'string') return b.app;
  if (b?.manifest && typeof b.manifest === 'object' && typeof (b.manifest as { app?: unknown }).app === 'string') return (b.manifest as { app: string }).app;
  if (typeof b?.manifest === 'string') return /^\s*app\s*=\s*"([^"]+)"/m.exec(b.manifest)?.[1] ?? null;
  return null;
}

async function appIdOf(db: Db, orgId: string, nameOrId: string, environment: string): Promise<string | null> {
  const where = nameOrId.startsWith('app_') ? and(eq(apps.orgId, orgId), eq(apps.id, nameOrId)) : and(eq(apps.orgId, orgId), eq(apps.environment, environment), eq(apps.name, nameOrId));
  // The live app of that name, else the latest deleted one (a call that deleted it is its own).
  const rows = await db.select({ id: apps.id, deletedAt: apps.deletedAt }).from(apps).where(where);
  const live = rows.find((r) => r.deletedAt === null);
  if (live) return live.id;
  const gone = rows.sort((a, b) => (b.deletedAt?.getTime() ?? 0) - (a.deletedAt?.getTime() ?? 0))[0];
  return gone?.id ?? null;
}

/** Top-level arguments: short scalars as they are, secrets and structures summarised. */
function redacted(args: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (SECRET.test(key)) out[key] = '(redacted)';
    else if (key === 'manifest') out[key] = '(manifest: see the release)';
    else if (typeof value === 'string') out[key] = value.length > MAX_VALUE ? `${value.slice(0, MAX_VALUE)}…` : value;
    else if (typeof value === 'number' || typeof value === 'boolean' || value === null) out[key] = value;
    else if (Array.isArray(value)) out[key] = value.slice(0, 20).map((v) => (typeof v === 'string' && v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE)}…` : typeof v === 'object' ? '(…)' : v));
    else out[key] = '(…)';
  }
  return out;
}
