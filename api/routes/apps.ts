// Read routes of an app: list, status, releases, instances, endpoints, events. Lists are paged
// with `limit` and an opaque `cursor` (api/cursor.ts).
import { Hono } from 'hono';
import { and, asc, desc, eq, gt, inArray, isNotNull, isNull, lt, or, sql } from 'drizzle-orm';
import { z } from 'zod';
import { apps, deployments, endpoints, instances, releases, type App } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, findAppForAudit, requireScope, type ApiEnv } from '../auth.js';
import { environmentOf } from '../environment-names.js';
import { decodeCursor, nextCursor, pageQuery } from '../cursor.js';
import { describeRoute } from '../openapi.js';
import { parseQuery } from '../request.js';
import { readEdges, servedState } from '../served-state.js';
import { loadNodeNames } from '../node-names.js';
import { appViewSchema, endpointViewSchema, eventViewSchema, instanceViewSchema, pageSchema, releaseViewSchema, statusViewSchema } from '../view-schemas.js';
import { appView, deploymentView, endpointView, eventView, instanceView, processViews, releaseView, type StatusView } from '../views.js';

const deletedFlag = z
  .enum(['true', 'false'])
  .default('false')
  .transform((v) => v === 'true');
const appsQuery = pageQuery(100, 1000).extend({ deleted: deletedFlag.describe('true: the deleted apps (tombstones) instead, by name') });
const releasesQuery = pageQuery(100, 1000);
const instancesQuery = pageQuery(100, 500);
const eventsQuery = pageQuery(100, 1000).extend({
  after: z.coerce.number().int().min(0).optional().describe('only events with a larger id'),
  type: z.string().optional(),
  instance: z.string().optional(),
  deployment: z.string().optional(),
  deleted: deletedFlag.describe('true: the events of the most recently deleted app of that name (an app id `app_…` works without it)'),
});

describeRoute({ method: 'get', path: '/v1/apps', scope: 'read', summary: 'The apps this token can see, by name', query: appsQuery, response: pageSchema('apps', appViewSchema) });
describeRoute({
  method: 'get',
  path: '/v1/apps/:app',
  scope: 'read',
  summary: "An app's status: current release, last deployment, instances that run or should, endpoints",
  response: statusViewSchema,
  errors: [404],
});
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/releases',
  scope: 'read',
  summary: "An app's releases, newest first",
  query: releasesQuery,
  response: pageSchema('releases', releaseViewSchema.extend({ current: z.boolean() })),
  errors: [404],
});
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/instances',
  scope: 'read',
  summary: "An app's instances, stopped ones included, newest first",
  query: instancesQuery,
  response: pageSchema('instances', instanceViewSchema),
  errors: [404],
});
describeRoute({ method: 'get', path: '/v1/apps/:app/endpoints', scope: 'read', summary: "An app's endpoints, where the edge serves them, and whether the live edges serve them (served / failed with each edge's error / pending / no-edge)", response: z.object({ endpoints: z.array(endpointViewSchema) }), errors: [404] });
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/events',
  scope: 'read',
  summary: "An app's events, oldest first; a deleted app's by its id (`app_…`), or by name with deleted=true",
  query: eventsQuery,
  response: pageSchema('events', eventViewSchema),
  errors: [404],
});

export function appRoutes(deps: ApiDeps) {
  const { db } = deps;
  const r = new Hono<ApiEnv>();

  r.get('/apps', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const q = parseQuery(appsQuery, c.req.query());
    if (q.deleted) {
      // Tombstones by name; one name may have been deleted several times, so the id breaks ties.
      const gone = decodeCursor(q.cursor, z.object({ name: z.string(), id: z.string() }));
      const rows = await db
        .select()
        .from(apps)
        .where(
          and(
            eq(apps.orgId, auth.orgId),
            isNotNull(apps.deletedAt),
            eq(apps.environment, environmentOf(auth)),
            auth.appId ? eq(apps.id, auth.appId) : undefined,
            gone ? or(gt(apps.name, gone.name), and(eq(apps.name, gone.name), gt(apps.id, gone.id))) : undefined,
          ),
        )
        .orderBy(asc(apps.name), asc(apps.id))
        .limit(q.limit);
      return c.json({ apps: rows.map((a) => appView(a, null)), next_cursor: nextCursor(rows, q.limit, (a) => ({ name: a.name, id: a.id })) });
    }
    const after = decodeCursor(q.cursor, z.object({ name: z.string() }));
    const rows = await db
      .select()
      .from(apps)
      .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), isNull(apps.deletedAt), auth.appId ? eq(apps.id, auth.appId) : undefined, after ? gt(apps.name, after.name) : undefined))
      .orderBy(asc(apps.name))
      .limit(q.limit);
    const versions = await versionsOf(rows.map((a) => a.currentReleaseId).filter((id): id is string => id !== null));
    return c.json({
      apps: rows.map((a) => appView(a, a.currentReleaseId ? (versions.get(a.currentReleaseId) ?? null) : null)),
      next_cursor: nextCursor(rows, q.limit, (a) => ({ name: a.name })),
    });
  });

  r.get('/apps/:app', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    return c.json(await status(app));
  });

  r.get('/apps/:app/releases', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    const q = parseQuery(releasesQuery, c.req.query());
    const after = decodeCursor(q.cursor, z.object({ version: z.number().int() }));
    const rows = await db
      .select()
      .from(releases)
      .where(and(eq(releases.appId, app.id), after ? lt(releases.version, after.version) : undefined))
      .orderBy(desc(releases.version))
      .limit(q.limit);
    return c.json({
      releases: rows.map((rel) => ({ ...releaseView(rel), current: rel.id === app.currentReleaseId })),
      next_cursor: nextCursor(rows, q.limit, (rel) => ({ version: rel.version })),
    });
  });

  r.get('/apps/:app/instances', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    const q = parseQuery(instancesQuery, c.req.query());
    // The cursor keeps created_at as Postgres prints it: a JS Date would drop its microseconds.
    const after = decodeCursor(q.cursor, z.object({ t: z.string().max(64), id: z.string().max(200) }));
    const rows = await db
      .select({ inst: instances, t: sql<string>`${instances.createdAt}::text` })
      .from(instances)
      .where(and(eq(instances.appId, app.id), after ? sql`(${instances.createdAt}, ${instances.id}) < (${after.t}::timestamptz, ${after.id})` : undefined))
      .orderBy(desc(instances.createdAt), desc(instances.id))
      .limit(q.limit);
    const version = new Map((await db.select({ id: releases.id, version: releases.version }).from(releases).where(eq(releases.appId, app.id))).map((r) => [r.id, r.version]));
    const nodeName = await loadNodeNames(db);
    return c.json({
      instances: rows.map((r) => instanceView(r.inst, version.get(r.inst.releaseId) ?? 0, nodeName)),
      next_cursor: nextCursor(rows, q.limit, (r) => ({ t: r.t, id: r.inst.id })),
    });
  });

  r.get('/apps/:app/endpoints', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    const rows = await db.select().from(endpoints).where(eq(endpoints.appId, app.id)).orderBy(asc(endpoints.port));
    const seen = await readEdges(db);
    return c.json({ endpoints: rows.map((e) => endpointView(e, deps.sharedAddresses, { app: app.name, served: servedState(e, seen) })) });
  });

  r.get('/apps/:app/events', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const q = parseQuery(eventsQuery, c.req.query());
    // Events outlive their app: a deleted one is read by its id, or by name with deleted=true.
    const app = await findAppForAudit(db, auth, c.req.param('app'), q.deleted);
    const cursor = decodeCursor(q.cursor, z.object({ id: z.number().int().min(0) }));
    const afterId = Math.max(q.after ?? -1, cursor?.id ?? -1);
    const rows = await deps.events.list({
      orgId: auth.orgId,
      appId: app.id,
      afterId: afterId >= 0 ? afterId : undefined,
      type: q.type,
      instanceId: q.instance,
      deploymentId: q.deployment,
      limit: q.limit,
    });
    return c.json({ events: rows.map((e) => eventView(e, app.name)), next_cursor: nextCursor(rows, q.limit, (e) => ({ id: e.id })) });
  });

  async function readable(auth: ApiEnv['Variables']['auth'], name: string): Promise<App> {
    requireScope(auth, 'read');
    return findApp(db, auth, name);
  }

  async function versionsOf(ids: string[]): Promise<Map<string, number>> {
    if (ids.length === 0) return new Map();
    const rows = await db.select({ id: releases.id, version: releases.version }).from(releases).where(inArray(releases.id, ids));
    return new Map(rows.map((r) => [r.id, r.version]));
  }

  /**
   * The app's state: the instances that run or should. Its reads go out together, and only the
   * versions of the releases they name are looked up (usually none beyond the current one): a
   * status is the most frequent read, and an app may have hundreds of releases.
   */
  async function status(app: App): Promise<StatusView> {
    const where = and(eq(instances.appId, app.id), or(eq(instances.desiredState, 'running'), inArray(instances.observedState, ['running', 'starting'])));
    const [current, [dep], inst, eps] = await Promise.all([
      app.currentReleaseId ? db.select().from(releases).where(eq(releases.id, app.currentReleaseId)).then((rows) => rows[0] ?? null) : Promise.resolve(null),
      db.select().from(deployments).where(eq(deployments.appId, app.id)).orderBy(desc(deployments.createdAt)).limit(1),
      db.select().from(instances).where(where).orderBy(desc(instances.createdAt)).limit(200),
      db.select().from(endpoints).where(eq(endpoints.appId, app.id)).orderBy(asc(endpoints.port)),
    ]);
    const named = new Set([dep?.releaseId, ...inst.map((i) => i.releaseId)].filter((id): id is string => id !== undefined && id !== current?.id));
    const [version, seen, nodeName] = await Promise.all([versionsOf([...named]), eps.length ? readEdges(db) : Promise.resolve([]), loadNodeNames(db)]);
    if (current) version.set(current.id, current.version);
    return {
      app: appView(app, current?.version ?? null),
      release: current ? releaseView(current) : null,
      processes: processViews(app, current, inst),
      deployment: dep ? deploymentView(dep, app.name, version.get(dep.releaseId) ?? 0) : null,
      instances: inst.map((i) => instanceView(i, version.get(i.releaseId) ?? 0, nodeName)),
      endpoints: eps.map((e) => endpointView(e, deps.sharedAddresses, { app: app.name, served: servedState(e, seen) })),
    };
  }

  return r;
}
