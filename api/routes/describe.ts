// `describe`: one object's desired versus observed state, with the reasons and recent events —
// for an app, an instance, a deployment or an endpoint.
import { Hono } from 'hono';
import { and, desc, eq } from 'drizzle-orm';
import { describePrivate } from '../private/private-view.js';
import { withSwarmNames } from '../scheduler/swarm-private.js';
import { apps, deployments, endpoints, instances, releases, type App } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { findDeployment } from '../find-deployment.js';
import type { Manifest } from '../manifest.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { readEdges, servedState } from '../served-state.js';
import { deploymentView, endpointView, eventView, instanceView } from '../views.js';
import { describeSource, desiredCounts } from '../desired-counts.js';
import { effectiveCheck } from '../scheduler/readiness-check.js';
import { loadNodeNames } from '../node-names.js';

// Describe documents are for people and `pier describe --json`; their shapes may grow.
describeRoute({ method: 'get', path: '/v1/apps/:app/describe', scope: 'read', summary: 'Explain an app: desired versus ready per process, the differences, the last deployment, instances with health output, recent events', response: { type: 'object' }, errors: [404] });
describeRoute({ method: 'get', path: '/v1/instances/:id', scope: 'read', summary: 'Explain an instance: its state, health output, container (exit code, OOM), last log lines and events', response: { type: 'object' }, errors: [404] });
describeRoute({ method: 'get', path: '/v1/deployments/:id/describe', scope: 'read', summary: 'Explain a deployment: its state, failure, strategy, deadline and events', response: { type: 'object' }, errors: [404] });
describeRoute({ method: 'get', path: '/v1/apps/:app/releases/:version', scope: 'read', summary: 'Explain a release: its pinned image, how it was built (context hash, Dockerfile, build arg names), what it copies, and its manifest', response: { type: 'object' }, errors: [404] });
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/endpoints/:port',
  scope: 'read',
  summary: 'Explain an endpoint: where it is served, whether each live edge serves it (or why not), the backends the edge has for it, and its recent events',
  response: { type: 'object' },
  errors: [404],
});

export function describeRoutes(deps: ApiDeps) {
  const { db } = deps;
  const r = new Hono<ApiEnv>();

  r.get('/apps/:app/describe', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(db, auth, c.req.param('app'));
    const rels = await db.select().from(releases).where(eq(releases.appId, app.id));
    const version = new Map(rels.map((r) => [r.id, r.version]));
    const current = rels.find((r) => r.id === app.currentReleaseId);
    const rows = await db.select().from(instances).where(eq(instances.appId, app.id)).orderBy(desc(instances.createdAt)).limit(50);
    const manifest = current?.manifest as Manifest | undefined;
    const processes = current && manifest
      ? desiredCounts(app, manifest, current.version).map(({ process, count, source }) => {
          const mine = rows.filter((i) => i.process === process && i.desiredState === 'running');
          const check = effectiveCheck(manifest, process);
          return {
            process,
            desired: count,
            desiredFrom: describeSource(source),
            running: mine.filter((i) => i.observedState === 'running').length,
            ready: mine.filter((i) => i.observedState === 'running' && (i.health === 'none' || i.health === 'healthy')).length,
            // The implicit readiness check is shown as such: the manifest declares no check.
            check: check === null ? null : check.type === 'listen' ? { implicit: true, ...check, restart_threshold: 'never' } : check,
          };
        })
      : [];
    const [dep] = await db.select().from(deployments).where(eq(deployments.appId, app.id)).orderBy(desc(deployments.createdAt)).limit(1);
    const recent = (await deps.events.list({ orgId: auth.orgId, appId: app.id, limit: 1000 })).slice(-20);
    const nodeName = await loadNodeNames(db);
    return c.json({
      app: app.name,
      release: current ? { version: current.version, image: current.image, imageDigest: current.imageDigest } : null,
      scale: app.scale,
      scaledAt: app.scaledAt,
      processes,
      differences: processes.filter((p) => p.ready !== p.desired).map((p) => `${p.process}: ${p.ready} of ${p.desired} ready`),
      deployment: dep ? deploymentView(dep, app.name, version.get(dep.releaseId) ?? 0) : null,
      instances: rows.slice(0, 20).map((i) => ({ ...instanceView(i, version.get(i.releaseId) ?? 0, nodeName), healthOutput: i.healthOutput })),
      private: deps.swarmPrivate
        ? await deps.swarmPrivate().then(async ({ limits, taskIpv6 }) => ({ ...withSwarmNames(await describePrivate(db, deps.runtime, app, manifest, rows, taskIpv6), app.name, manifest), limits }))
        : await describePrivate(db, deps.runtime, app, manifest, rows),
      events: recent.map((e) => eventView(e, app.name)),
    });
  });

  r.get('/apps/:app/releases/:version', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(db, auth, c.req.param('app'));
    const version = Number(c.req.param('version'));
    const [rel] = Number.isInteger(version) && version > 0 ? await db.select().from(releases).where(and(eq(releases.appId, app.id), eq(releases.version, version))) : [];
    if (!rel) throw new PierError('E_RELEASE_NOT_FOUND', `${app.name} has no release v${c.req.param('version')}`, { status: 404, hint: `\`pier releases --app ${app.name}\` lists them` });
    return c.json({
      app: app.name,
      version: rel.version,
      current: app.currentReleaseId === rel.id,
      image: rel.image,
      imageDigest: rel.imageDigest,
      imageId: rel.imageId,
      // Build arg values may hold secrets: only their names are shown.
      build: rel.build ?? null,
      rollbackOf: rel.rollbackOf,
      description: rel.description,
      createdAt: rel.createdAt.toISOString(),
      manifest: withoutBuildArgValues(rel.manifest as Manifest),
    });
  });

  r.get('/instances/:id', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const [row] = await db
      .select({ inst: instances, app: apps, version: releases.version })
      .from(instances)
      .innerJoin(apps, eq(apps.id, instances.appId))
      .innerJoin(releases, eq(releases.id, instances.releaseId))
      .where(and(eq(instances.id, c.req.param('id')), eq(apps.orgId, auth.orgId)));
    if (!row || !visible(auth, row.app)) {
      throw new PierError('E_INSTANCE_NOT_FOUND', `there is no instance "${c.req.param('id')}"`, { status: 404, hint: '`pier status` lists each app\'s instances' });
    }
    const { inst } = row;
    const container = inst.containerId ? await deps.runtime.inspect(inst.containerId).catch(() => null) : null;
    const lastLogs = container ? (await deps.runtime.logs(container.id, 20).catch(() => [])).map((l) => `${l.stream === 'stderr' ? '! ' : ''}${l.line}`) : [];
    const events = await deps.events.list({ orgId: auth.orgId, instanceId: inst.id, limit: 100 });
    return c.json({
      app: row.app.name,
      instance: { ...instanceView(inst, row.version, await loadNodeNames(db)), healthOutput: inst.healthOutput, healthChangedAt: inst.healthChangedAt, lastOom: inst.lastOom },
      container: container
        ? { id: container.id, state: container.state, exitCode: container.exitCode, oomKilled: container.oomKilled, error: container.error, startedAt: container.startedAt, finishedAt: container.finishedAt }
        : null,
      lastLogs,
      events: events.map((e) => eventView(e, row.app.name)),
    });
  });

  r.get('/deployments/:id/describe', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const row = await findDeployment(db, auth, c.req.param('id'));
    const events = await deps.events.list({ orgId: auth.orgId, deploymentId: row.dep.id, limit: 1000 });
    return c.json({ ...deploymentView(row.dep, row.app.name, row.version), strategy: row.dep.strategy, deadline: row.dep.deadline, events: events.map((e) => eventView(e, row.app.name)) });
  });

  r.get('/apps/:app/endpoints/:port', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(db, auth, c.req.param('app'));
    const port = Number(c.req.param('port'));
    const [ep] = await db.select().from(endpoints).where(and(eq(endpoints.appId, app.id), eq(endpoints.port, port)));
    if (!ep) throw new PierError('E_ENDPOINT_NOT_FOUND', `${app.name} has no endpoint on port ${c.req.param('port')}`, { status: 404, hint: `\`pier status --app ${app.name}\` lists its endpoints` });
    const snapshot = deps.edgeFeed.current();
    const inSnapshot = snapshot.endpoints.find((e) => e.id === ep.id);
    const seen = await readEdges(db);
    const view = endpointView(ep, deps.sharedAddresses, { app: app.name, served: servedState(ep, seen) });
    // What each live edge does with its backends: ejected ones and their last error.
    const reported = seen.filter((e) => e.live).flatMap((e) => e.report.backends.filter((b) => b.endpoint === ep.id).map((b) => ({ edge: e.name, ...b })));
    const events = (await deps.events.list({ orgId: auth.orgId, appId: app.id, limit: 1000 }))
      .filter((e) => e.type.startsWith('endpoint.') || e.type.startsWith('backend.'))
      .filter((e) => e.data.endpoint === ep.id || e.data.port === ep.port || e.type === 'endpoint.changed')
      .slice(-20);
    return c.json({
      app: app.name,
      endpoint: view,
      served: view.served.state,
      reason: view.served.reason,
      hint: view.served.hint,
      edgeVersion: snapshot.version,
      backends: (inSnapshot?.backends ?? []).map((b) => {
        const seenBy = reported.filter((r) => r.id === b.id);
        return { ...b, ejectedBy: seenBy.filter((r) => r.ejected).map((r) => ({ edge: r.edge, connectFailures: r.connectFailures, lastError: r.lastError ?? null })) };
      }),
      events: events.map((e) => eventView(e, app.name)),
    });
  });

  return r;
}

function visible(auth: AuthContext, app: App): boolean {
  return auth.appId === null || auth.appId === app.id;
}

/** Build arguments often carry tokens: a described manifest names them but hides their values. */
function withoutBuildArgValues(manifest: Manifest): Manifest {
  if (!manifest.build) return manifest;
  const args = Object.fromEntries(Object.keys(manifest.build.args).map((k) => [k, '(hidden)']));
  return { ...manifest, build: { ...manifest.build, args } };
}
