// Environments: list, describe, extend, destroy (api/environment-service.ts); the parity report
// between two (api/environment-diff.ts) and promote, which deploys one environment's release of
// each app into another and is refused on drift unless asked to allow it.
import { Hono } from 'hono';
import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../../db/database.js';
import { apps, releases, secrets } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { diffApp, type Difference, type DiffSide } from '../environment-diff.js';
import { environmentEndpoints } from '../environment-endpoints.js';
import { checkEnvironmentName, environmentForbidden, matchesPattern } from '../environment-names.js';
import { ttlMs, ttlSchema } from '../environment-overrides.js';
import type { EnvironmentService } from '../environment-service.js';
import { diffViewSchema, environmentDetailViewSchema, environmentView, environmentViewSchema } from '../environment-views.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, parseQuery, readJson } from '../request.js';
import { currentSecretVersions } from '../secret-service.js';
import { deployViewSchema } from '../view-schemas.js';
import { appView, deploymentView, releaseView } from '../views.js';

const destroyQuery = z.object({
  force: z.enum(['true', 'false']).default('false').describe('needed for a persistent or protected environment'),
  confirm: z.string().max(40).optional().describe("the environment's name again (with force)"),
  wait: z.coerce.number().int().min(0).max(300).default(60).describe('seconds to wait for the containers to be gone'),
});
const extendBody = z.object({ ttl: ttlSchema });
const promoteBody = z.object({
  from: z.string().max(40),
  to: z.string().max(40),
  /** Only these apps (default: every app deployed in `from`). */
  apps: z.array(z.string().max(40)).max(100).optional(),
  allowDrift: z.boolean().default(false),
  description: z.string().max(500).default(''),
});

describeRoute({ method: 'get', path: '/v1/environments', scope: 'read', summary: 'The environments this token can see, with their apps', response: z.object({ environments: z.array(environmentViewSchema.extend({ apps: z.array(z.string()) })) }) });
describeRoute({ method: 'get', path: '/v1/environments/:name', scope: 'read', summary: 'An environment: its apps, releases, digests and endpoints', response: environmentDetailViewSchema, errors: [404] });
describeRoute({ method: 'post', path: '/v1/environments/:name/extend', scope: 'deploy', summary: "Move a preview's expiry to now + ttl", body: extendBody, response: z.object({ environment: environmentViewSchema }), errors: [400, 404] });
describeRoute({
  method: 'delete',
  path: '/v1/environments/:name',
  scope: 'deploy',
  summary: 'Destroy an environment: every app in it is deleted (instances, endpoints, addresses, app tokens); idempotent (destroyed: false when nothing was there)',
  description: 'A persistent or protected environment (production) needs `force=true` and `confirm=<name>`; without them 409 E_ENVIRONMENT_PROTECTED and nothing changes.',
  query: destroyQuery,
  response: z.object({ environment: z.string(), destroyed: z.boolean(), apps: z.array(z.object({ name: z.string(), instances: z.number(), ports: z.array(z.number()), addresses: z.array(z.string()), containersRemaining: z.number().nullable() })) }),
  errors: [404, 409],
});
describeRoute({ method: 'get', path: '/v1/environments/:a/diff/:b', scope: 'read', summary: 'What differs between two environments, each difference declared (by an [env.*] override) or drift', response: diffViewSchema, errors: [404] });
describeRoute({
  method: 'post',
  path: '/v1/promote',
  scope: 'deploy',
  summary: "Deploy each app's current release of `from` (its exact digest and declared manifest) into `to`; refused on drift unless allowDrift",
  body: promoteBody,
  response: z.object({ from: z.string(), to: z.string(), drift: z.array(z.unknown()), deploys: z.array(deployViewSchema) }),
  status: 201,
  errors: [404, 409],
});

export function environmentRoutes(deps: ApiDeps & { environments: EnvironmentService }) {
  const { db } = deps;
  const r = new Hono<ApiEnv>();

  r.get('/environments', async (c) => {
    const rows = await deps.environments.list(c.get('auth'));
    return c.json({ environments: rows.map((e) => ({ ...environmentView(e), apps: e.apps })) });
  });

  r.get('/environments/:name', async (c) => {
    const auth = c.get('auth');
    const env = await deps.environments.get(auth, checkEnvironmentName(c.req.param('name')));
    const rows = await db
      .select({ name: apps.name, version: releases.version, digest: releases.imageDigest })
      .from(apps)
      .leftJoin(releases, eq(releases.id, apps.currentReleaseId))
      .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, env.name), isNull(apps.deletedAt)))
      .orderBy(asc(apps.name));
    return c.json({
      ...environmentView(env),
      apps: rows.map((a) => ({ name: a.name, release: a.version ?? null, digest: a.digest ?? null })),
      endpoints: await environmentEndpoints(db, auth.orgId, env.name, deps.sharedAddresses),
    });
  });

  r.post('/environments/:name/extend', async (c) => {
    const body = parseBody(extendBody, await readJson(c.req));
    const env = await deps.environments.extend(c.get('auth'), checkEnvironmentName(c.req.param('name')), ttlMs(body.ttl));
    return c.json({ environment: environmentView(env) });
  });

  r.delete('/environments/:name', async (c) => {
    const q = parseQuery(destroyQuery, c.req.query());
    const result = await deps.environments.destroy(c.get('auth'), checkEnvironmentName(c.req.param('name')), { force: q.force === 'true', confirm: q.confirm, waitMs: q.wait * 1000 });
    return c.json(result);
  });

  r.get('/environments/:a/diff/:b', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const a = visible(auth, c.req.param('a'));
    const b = visible(auth, c.req.param('b'));
    const differences = await diff(db, auth, a, b);
    return c.json({ a, b, drift: differences.some((d) => d.kind === 'drift'), differences });
  });

  r.post('/promote', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'deploy');
    const body = parseBody(promoteBody, await readJson(c.req));
    const from = visible(auth, body.from);
    const to = visible(auth, body.to);
    if (from === to) throw new PierError('E_BAD_REQUEST', 'promote needs two different environments', { status: 400, hint: 'e.g. `pier promote --from staging --to production`' });
    const differences = (await diff(db, auth, from, to, body.apps)).filter((d) => d.kind === 'drift' && d.field !== 'digest' && d.field !== 'app');
    if (differences.length && !body.allowDrift) {
      throw new PierError('E_DRIFT', `${from} and ${to} differ beyond their declared overrides (${differences.length} difference${differences.length === 1 ? '' : 's'}): promote refused`, {
        status: 409,
        hint: `\`pier env diff ${from} ${to}\` shows them; fix them, or promote anyway with --allow-drift`,
        details: differences,
      });
    }
    const sources = await db
      .select({ app: apps, release: releases })
      .from(apps)
      .innerJoin(releases, eq(releases.id, apps.currentReleaseId))
      .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, from), isNull(apps.deletedAt), body.apps ? inArray(apps.name, body.apps) : undefined))
      .orderBy(asc(apps.name));
    if (!sources.length) throw new PierError('E_NOTHING_DEPLOYED', `nothing is deployed in ${from}${body.apps ? ` for ${body.apps.join(', ')}` : ''}`, { status: 404, hint: 'deploy there first' });
    const deploys = [];
    for (const s of sources) {
      const result = await deps.deploys.promote({ ...auth, environment: to }, s.release, body.description || `promoted from ${from} v${s.release.version}`);
      deploys.push({
        app: appView(result.app, result.release.version),
        release: releaseView(result.release),
        deployment: deploymentView(result.deployment, result.app.name, result.release.version),
        created: result.created,
      });
    }
    return c.json({ from, to, drift: differences, deploys }, 201);
  });

  return r;
}

function visible(auth: AuthContext, name: string): string {
  checkEnvironmentName(name);
  if (!matchesPattern(name, auth.environments)) throw environmentForbidden(name, auth.environments ?? '');
  return name;
}

async function diff(db: Db, auth: AuthContext, a: string, b: string, only?: string[]): Promise<Difference[]> {
  const [sa, sb] = await Promise.all([sides(db, auth, a, only), sides(db, auth, b, only)]);
  const names = [...new Set([...sa.keys(), ...sb.keys()])].sort();
  const empty = (environment: string): DiffSide => ({ environment, app: null, release: null, secretDigests: {} });
  return names.flatMap((n) => diffApp(n, sa.get(n) ?? empty(a), sb.get(n) ?? empty(b)));
}

async function sides(db: Db, auth: AuthContext, environment: string, only?: string[]): Promise<Map<string, DiffSide>> {
  const rows = await db
    .select({ app: apps, release: releases })
    .from(apps)
    .leftJoin(releases, eq(releases.id, apps.currentReleaseId))
    .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environment), isNull(apps.deletedAt), only ? inArray(apps.name, only) : undefined));
  const out = new Map<string, DiffSide>();
  for (const { app, release } of rows) {
    if (auth.appId !== null && auth.appId !== app.id) continue;
    const versions = await currentSecretVersions(db, app.id);
    const keys = Object.keys(versions);
    const secretRows = keys.length ? await db.select({ key: secrets.key, version: secrets.version, digest: secrets.digest }).from(secrets).where(and(eq(secrets.appId, app.id), inArray(secrets.key, keys))) : [];
    const secretDigests = Object.fromEntries(secretRows.filter((s) => versions[s.key] === s.version).map((s) => [s.key, s.digest ?? '']));
    out.set(app.name, { environment, app, release, secretDigests });
  }
  return out;
}
