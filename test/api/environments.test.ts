// Environments through the HTTP API on a real database (PGlite, or PostgreSQL with DATABASE_URL)
// and the in-memory runtime: a preview made on first deploy, names resolved within it, the port
// range, overrides, destroy (idempotent; production guarded), the reaper on a fake clock (and its
// removal of a destroyed preview's network, retried when the engine fails), and tokens bound to
// environments.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq, isNull } from 'drizzle-orm';
import { apps, environments, events, privateNetworks, releases } from '../../db/schema/index.js';
import type { Manifest } from '../../api/manifest.js';
import { createEnvironmentReaper } from '../../api/environment-reaper.js';
import { createEnvironmentService } from '../../api/environment-service.js';
import { createPrivateNetworks } from '../../api/private/private-networks.js';
import { parsePrivatePrefixes } from '../../api/private/private-prefixes.js';
import { createDockerRuntime } from '../../api/runtime/docker-runtime.js';
import type { Runtime } from '../../api/runtime/runtime.js';
import { createControlPlane, echoManifest, INSTALLATION } from '../support/memory-control-plane.js';

const env = (name: string) => ({ 'pier-env': name });

test('a deploy to pr-42 makes the preview, runs its own copy of the app on a port from the range, and leaves production alone', async (t) => {
  const cp = await createControlPlane(t);
  const prod = await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1, port: 9000 }) } });
  assert.equal(prod.status, 201);
  const first = await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1, port: 9000 }), environment: { ttl: '2h', pr: 42, branch: 'feature/x' } }, headers: env('pr-42') });
  assert.equal(first.status, 201, await first.clone().text());
  const view = (await first.json()) as { environment: { name: string; kind: string; expiresAt: string; pr: number }; endpoints: { port: number; manifestPort: number; addresses: string[] }[]; release: { version: number } };
  assert.equal(view.environment.name, 'pr-42');
  assert.equal(view.environment.kind, 'preview');
  assert.equal(view.environment.pr, 42);
  const ttl = Date.parse(view.environment.expiresAt) - Date.now();
  assert.ok(ttl > 3_500_000 && ttl <= 7_200_000, `expiry ${view.environment.expiresAt}`);
  assert.equal(view.endpoints.length, 1);
  assert.equal(view.endpoints[0]?.manifestPort, 9000);
  assert.ok(view.endpoints[0]!.port >= 20000 && view.endpoints[0]!.port <= 29999, `preview port ${view.endpoints[0]?.port}`);
  assert.deepEqual(view.endpoints[0]?.addresses, [`127.0.0.1:${view.endpoints[0]?.port}`]);

  // Two apps named web: one per environment, each found within its own.
  const rows = await cp.db.select().from(apps).where(and(eq(apps.orgId, cp.orgId), eq(apps.name, 'web'), isNull(apps.deletedAt)));
  assert.deepEqual(rows.map((r) => r.environment).sort(), ['pr-42', 'production']);
  const inPreview = (await (await cp.request('/v1/apps/web', { headers: env('pr-42') })).json()) as { app: { id: string } };
  const inProd = (await (await cp.request('/v1/apps/web')).json()) as { app: { id: string } };
  assert.notEqual(inPreview.app.id, inProd.app.id);

  // The same deploy again is the same release; a changed one is a new release in the same preview.
  const again = await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1, port: 9000 }) }, headers: env('pr-42') });
  assert.equal(again.status, 200);
  const changed = await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1, port: 9000, env: { GREETING: 'v2' } }) }, headers: env('pr-42') });
  assert.equal(changed.status, 201);
  const v2 = (await changed.json()) as typeof view;
  assert.equal(v2.release.version, 2);
  assert.equal(v2.endpoints[0]?.port, view.endpoints[0]?.port, 'a preview keeps its port across deploys');

  const list = (await (await cp.request('/v1/environments')).json()) as { environments: { name: string; apps: string[] }[] };
  assert.deepEqual(list.environments.map((e) => [e.name, e.apps]), [['pr-42', ['web']], ['production', ['web']]]);
});

test('destroy: production needs force and its name, a preview goes with its apps, and a second destroy is a no-op', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).status, 201);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) }, headers: env('pr-7') })).status, 201);

  const refused = await cp.request('/v1/environments/production', { method: 'DELETE' });
  assert.equal(refused.status, 409);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'E_ENVIRONMENT_PROTECTED');
  const wrongName = await cp.request('/v1/environments/production?force=true&confirm=prod', { method: 'DELETE' });
  assert.equal(wrongName.status, 409);
  assert.equal((await cp.db.select().from(apps).where(and(eq(apps.environment, 'production'), isNull(apps.deletedAt)))).length, 1, 'production is untouched');

  const gone = await cp.request('/v1/environments/pr-7?wait=0', { method: 'DELETE' });
  assert.equal(gone.status, 200);
  const body = (await gone.json()) as { destroyed: boolean; apps: { name: string; ports: number[] }[] };
  assert.equal(body.destroyed, true);
  assert.equal(body.apps[0]?.name, 'web');
  assert.equal(body.apps[0]?.ports.length, 1);
  const again = (await (await cp.request('/v1/environments/pr-7', { method: 'DELETE' })).json()) as { destroyed: boolean };
  assert.equal(again.destroyed, false);
  assert.equal((await cp.request('/v1/environments/pr-7')).status, 404);
});

test('[env.preview] sets counts and TTL; overriding the image is refused at its line', async (t) => {
  const cp = await createControlPlane(t);
  const manifest = `${echoManifest('web', { count: 3 })}\n[env.preview]\nttl = "90m"\n[env.preview.processes.web]\ncount = 1\n`;
  const res = await cp.request('/v1/deploys', { body: { manifest }, headers: env('pr-9') });
  assert.equal(res.status, 201, await res.clone().text());
  const view = (await res.json()) as { environment: { expiresAt: string }; release: { version: number } };
  const left = Date.parse(view.environment.expiresAt) - Date.now();
  assert.ok(left > 80 * 60_000 && left <= 90 * 60_000, view.environment.expiresAt);
  const [row] = await cp.db.select({ manifest: releases.manifest }).from(releases).innerJoin(apps, eq(apps.currentReleaseId, releases.id)).where(eq(apps.environment, 'pr-9'));
  assert.equal((row?.manifest as Manifest).processes.web?.count, 1);

  const bad = await cp.request('/v1/deploys', { body: { manifest: `${echoManifest('web')}\n[env.staging]\nimage = "other:2"\n` }, headers: env('staging') });
  assert.equal(bad.status, 422);
  const err = ((await bad.json()) as { error: { code: string; details: { path: string; line?: number; message: string }[] } }).error;
  assert.equal(err.code, 'E_MANIFEST_INVALID');
  assert.equal(err.details[0]?.path, 'env.staging.image');
  assert.ok(err.details[0]?.line && err.details[0].line > 10, JSON.stringify(err.details));
  assert.match(err.details[0]?.message ?? '', /cannot be overridden/);
});

test('the reaper warns an hour before a preview expires and destroys it once expired (fake clock); persistent ones stay', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).status, 201);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }), environment: { ttl: '2h' } }, headers: env('pr-1') })).status, 201);
  let now = new Date();
  const environmentsService = createEnvironmentService({ db: cp.db, transactions: cp.transactions, deleter: cp.deleter, now: () => now });
  const reaper = createEnvironmentReaper({ db: cp.db, events: cp.events, environments: environmentsService, runtime: cp.runtime, installationId: INSTALLATION, log: cp.logs.log, now: () => now });

  assert.deepEqual(await reaper.tick(), { warned: [], destroyed: [], swept: [], networks: [] });
  now = new Date(Date.now() + 70 * 60_000);
  assert.deepEqual((await reaper.tick()).warned, ['pr-1']);
  assert.deepEqual((await reaper.tick()).warned, [], 'warned once');
  const [warning] = await cp.db.select().from(events).where(eq(events.type, 'environment.expiring'));
  assert.match(warning?.message ?? '', /pr-1 expires at/);

  now = new Date(Date.now() + 2 * 3_600_000 + 1_000);
  assert.deepEqual((await reaper.tick()).destroyed, ['pr-1']);
  const [row] = await cp.db.select().from(environments).where(eq(environments.name, 'pr-1'));
  assert.ok(row?.destroyedAt);
  assert.equal((await cp.db.select().from(apps).where(and(eq(apps.environment, 'pr-1'), isNull(apps.deletedAt)))).length, 0);
  assert.equal((await cp.db.select().from(apps).where(and(eq(apps.environment, 'production'), isNull(apps.deletedAt)))).length, 1);
  const [destroyed] = await cp.db.select().from(events).where(eq(events.type, 'environment.destroyed'));
  assert.equal(destroyed?.reason, 'expired');
});

test('a token bound to pr-* deploys previews and cannot touch production', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).status, 201);
  const bad = await cp.request('/v1/tokens', { body: { scope: 'deploy', environments: 'PR 42' } });
  assert.equal(bad.status, 400);
  const made = await cp.request('/v1/tokens', { body: { scope: 'deploy', environments: 'pr-*' } });
  assert.equal(made.status, 201, await made.clone().text());
  const { secret: token, token: view } = (await made.json()) as { secret: string; token: { environments?: string } };
  assert.equal(view.environments, 'pr-*');
  assert.equal((await cp.request('/v1/deploys', { token, body: { manifest: echoManifest('web', { count: 1 }) }, headers: env('pr-3') })).status, 201);
  const prod = await cp.request('/v1/deploys', { token, body: { manifest: echoManifest('web', { count: 2 }) } });
  assert.equal(prod.status, 403);
  assert.equal(((await prod.json()) as { error: { code: string } }).error.code, 'E_ENVIRONMENT_FORBIDDEN');
  assert.equal((await cp.request('/v1/environments/production?force=true&confirm=production', { token, method: 'DELETE', headers: env('pr-3') })).status, 404);
  const list = (await (await cp.request('/v1/environments', { token, headers: env('pr-3') })).json()) as { environments: { name: string }[] };
  assert.deepEqual(list.environments.map((e) => e.name), ['pr-3']);
});

test('the reaper removes the private network of a destroyed environment and frees its subnets; production keeps its own', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).status, 201);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }), environment: { ttl: '2h' } }, headers: env('pr-7') })).status, 201);
  const networks = createPrivateNetworks({ db: cp.db, runtime: cp.runtime, prefixes: parsePrivatePrefixes(undefined, undefined), log: cp.logs.log });
  const production = await networks.networkFor({ orgId: cp.orgId, environment: 'production' });
  const preview = await networks.networkFor({ orgId: cp.orgId, environment: 'pr-7' });
  assert.deepEqual([production.key, preview.key], [cp.orgId, `${cp.orgId}.pr-7`]);
  assert.notEqual(production.ipv4Subnet, preview.ipv4Subnet);
  const forgotten: string[] = [];
  const environmentsService = createEnvironmentService({ db: cp.db, transactions: cp.transactions, deleter: cp.deleter });
  const reaper = createEnvironmentReaper({ db: cp.db, events: cp.events, environments: environmentsService, runtime: cp.runtime, installationId: INSTALLATION, log: cp.logs.log, onNetworkRemoved: (n) => forgotten.push(n) });

  assert.deepEqual((await reaper.tick()).networks, [], 'a live preview keeps its network');
  assert.equal((await cp.request('/v1/environments/pr-7', { method: 'DELETE', headers: env('pr-7') })).status, 200);
  assert.deepEqual((await reaper.tick()).networks, [preview.name]);
  assert.deepEqual(forgotten, [preview.name]);
  const onEngine = (await cp.runtime.listNetworks({ 'dev.pier.private': 'true' })).map((n) => n.name);
  assert.deepEqual(onEngine, [production.name]);
  assert.deepEqual((await cp.db.select().from(privateNetworks)).map((r) => r.key), [cp.orgId]);
  // Its slot is free again: the next network takes it.
  const next = await networks.networkFor({ orgId: cp.orgId, environment: 'pr-8' });
  assert.equal(next.slot, preview.slot);
});

test('a private network the engine cannot remove is recorded once (environment.network_not_removed) and removed by a later pass', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }), environment: { ttl: '2h' } }, headers: env('pr-9') })).status, 201);
  const networks = createPrivateNetworks({ db: cp.db, runtime: cp.runtime, prefixes: parsePrivatePrefixes(undefined, undefined), log: cp.logs.log });
  const preview = await networks.networkFor({ orgId: cp.orgId, environment: 'pr-9' });
  assert.equal((await cp.request('/v1/environments/pr-9', { method: 'DELETE', headers: env('pr-9') })).status, 200);
  // The engine does not answer (a Docker runtime on a socket nobody listens on) for the removal.
  const gone = createDockerRuntime({ socketPath: `/nonexistent/pier-reaper-${process.pid}.sock`, log: cp.logs.log });
  let engine: Runtime = gone;
  const runtime: Runtime = { ...cp.runtime, removeNetwork: (name) => engine.removeNetwork(name) };
  const environmentsService = createEnvironmentService({ db: cp.db, transactions: cp.transactions, deleter: cp.deleter });
  const reaper = createEnvironmentReaper({ db: cp.db, events: cp.events, environments: environmentsService, runtime, installationId: INSTALLATION, log: cp.logs.log });

  assert.deepEqual((await reaper.tick()).networks, [], 'not removed while the engine does not answer');
  assert.deepEqual((await reaper.tick()).networks, []);
  const recorded = await cp.db.select().from(events).where(eq(events.type, 'environment.network_not_removed'));
  assert.equal(recorded.length, 1, 'recorded once, not every pass');
  assert.equal(recorded[0]?.reason, 'E_RUNTIME_UNAVAILABLE');
  assert.deepEqual(recorded[0]?.data, { environment: 'pr-9', network: preview.name, code: 'E_RUNTIME_UNAVAILABLE' });
  assert.deepEqual((await cp.db.select().from(privateNetworks)).map((r) => r.key), [`${cp.orgId}.pr-9`], 'its subnets stay taken until it is gone');

  engine = cp.runtime;
  assert.deepEqual((await reaper.tick()).networks, [preview.name], 'removed once the engine answers');
  assert.deepEqual(await cp.runtime.listNetworks({ 'dev.pier.private': 'true' }), []);
});
