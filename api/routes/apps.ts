// Read routes of an app: list, status, releases, instances, endpoints, events.
import { Hono } from 'hono';
import { and, asc, desc, eq, inArray, or } from 'drizzle-orm';
import { z } from 'zod';
import { apps, deployments, endpoints, instances, releases, type App } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import { parseQuery } from '../request.js';
import { appView, deploymentView, endpointView, eventView, instanceView, releaseView, type StatusView } from '../views.js';

const eventsQuery = z.object({
  after: z.coerce.number().int().min(0).optional(),
  type: z.string().optional(),
  instance: z.string().optional(),
  deployment: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export function appRoutes(deps: ApiDeps) {
  const { db } = deps;
  const r = new Hono<ApiEnv>();

  r.get('/apps', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const where = auth.appId ? and(eq(apps.orgId, auth.orgId), eq(apps.id, auth.appId)) : eq(apps.orgId, auth.orgId);
    const rows = await db.select().from(apps).where(where).orderBy(asc(apps.name));
    const versions = await versionsOf(rows.map((a) => a.currentReleaseId).filter((id): id is string => id !== null));
    return c.json({ apps: rows.map((a) => appView(a, a.currentReleaseId ? (versions.get(a.currentReleaseId) ?? null) : null)) });
  });

  r.get('/apps/:app', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    return c.json(await status(app));
  });

  r.get('/apps/:app/releases', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    const rows = await db.select().from(releases).where(eq(releases.appId, app.id)).orderBy(desc(releases.version));
    return c.json({ releases: rows.map((rel) => ({ ...releaseView(rel), current: rel.id === app.currentReleaseId })) });
  });

  r.get('/apps/:app/instances', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    return c.json({ instances: (await status(app, true)).instances });
  });

  r.get('/apps/:app/endpoints', async (c) => {
    const app = await readable(c.get('auth'), c.req.param('app'));
    const rows = await db.select().from(endpoints).where(eq(endpoints.appId, app.id)).orderBy(asc(endpoints.port));
    return c.json({ endpoints: rows.map((e) => endpointView(e, deps.sharedAddresses)) });
  });

  r.get('/apps/:app/events', async (c) => {
    const auth = c.get('auth');
    const app = await readable(auth, c.req.param('app'));
    const q = parseQuery(eventsQuery, c.req.query());
    const rows = await deps.events.list({
      orgId: auth.orgId,
      appId: app.id,
      afterId: q.after,
      type: q.type,
      instanceId: q.instance,
      deploymentId: q.deployment,
      limit: q.limit,
    });
    return c.json({ events: rows.map(eventView) });
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

  /** The app's state; `all` also lists stopped instances, newest first. */
  async function status(app: App, all = false): Promise<StatusView> {
    const rels = await db.select().from(releases).where(eq(releases.appId, app.id));
    const version = new Map(rels.map((r) => [r.id, r.version]));
    const current = rels.find((r) => r.id === app.currentReleaseId) ?? null;
    const [dep] = await db.select().from(deployments).where(eq(deployments.appId, app.id)).orderBy(desc(deployments.createdAt)).limit(1);
    const where = all
      ? eq(instances.appId, app.id)
      : and(eq(instances.appId, app.id), or(eq(instances.desiredState, 'running'), inArray(instances.observedState, ['running', 'starting'])));
    const inst = await db.select().from(instances).where(where).orderBy(desc(instances.createdAt)).limit(200);
    const eps = await db.select().from(endpoints).where(eq(endpoints.appId, app.id)).orderBy(asc(endpoints.port));
    return {
      app: appView(app, current?.version ?? null),
      release: current ? releaseView(current) : null,
      deployment: dep ? deploymentView(dep, app.name, version.get(dep.releaseId) ?? 0) : null,
      instances: inst.map((i) => instanceView(i, version.get(i.releaseId) ?? 0)),
      endpoints: eps.map((e) => endpointView(e, deps.sharedAddresses)),
    };
  }

  return r;
}
