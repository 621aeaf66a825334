// The edge feed: a one-app refresh rebuilds that app's part and keeps the rest as it was; a full
// refresh picks up anything; an app whose endpoints are gone leaves the snapshot; refreshes that
// arrive while a build runs are gathered; a failed build is retried until it succeeds. Endpoints
// are keyed by their row's id (unique across orgs), labelled app/port, with their revision.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { endpoints, instances } from '../../db/schema/index.js';
import { parseManifest } from '../../api/manifest.js';
import { createOrg } from '../support/test-api.js';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../support/memory-control-plane.js';

async function next(cp: ControlPlane, after: number): Promise<EdgeConfig> {
  for (let i = 0; i < 300; i++) {
    const s = cp.edgeFeed.current();
    if (s.version > after) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no new snapshot');
}

const backendsOf = (s: EdgeConfig, app: string) => s.endpoints.filter((e) => e.app === app).flatMap((e) => e.backends.map((b) => b.id)).sort();

test('a one-app refresh rebuilds that app only; a full refresh catches what was not announced', async (t) => {
  const cp = await createControlPlane(t);
  const a = await cp.deploy(echoManifest('alpha', { count: 1, port: 9501 }));
  const b = await cp.deploy(echoManifest('beta', { count: 1, port: 9502 }));
  await cp.converge(a.app.id, async () => (await cp.pass(a.app.id))?.changed === false, 'alpha running');
  await cp.converge(b.app.id, async () => (await cp.pass(b.app.id))?.changed === false, 'beta running');
  // The health monitor would see beta's instance exit below and announce beta itself: it stops,
  // and a build it asked for before (which could read the change below) is let finish.
  await cp.stopHealth();
  await cp.edgeFeed.rebuild();
  await new Promise((r) => setTimeout(r, 100));
  const first = await cp.edgeFeed.rebuild();
  assert.deepEqual(first.endpoints.map((e) => [e.name, e.backends.length]).sort(), [['alpha/9501', 1], ['beta/9502', 1]]);
  const published: EdgeConfig[] = [];
  cp.edgeFeed.subscribe((s) => void published.push(s));

  // Both apps lose their instance in the database; only alpha is announced.
  await cp.db.update(instances).set({ observedState: 'exited' }).where(eq(instances.appId, a.app.id));
  await cp.db.update(instances).set({ observedState: 'exited' }).where(eq(instances.appId, b.app.id));
  cp.edgeFeed.refresh(a.app.id);
  const partial = await next(cp, first.version);
  assert.deepEqual(backendsOf(partial, 'alpha'), []);
  assert.deepEqual(backendsOf(partial, 'beta'), backendsOf(first, 'beta'), 'beta kept its part');
  assert.strictEqual(partial.endpoints.find((e) => e.app === 'beta'), first.endpoints.find((e) => e.app === 'beta'), 'reused as it was, not rebuilt');

  cp.edgeFeed.refresh();
  const full = await next(cp, partial.version);
  assert.deepEqual(backendsOf(full, 'beta'), []);
  assert.equal(published.length, 2, 'one version per change');
});

test('refreshes during a build are gathered into the next one, and nothing changed publishes nothing', async (t) => {
  const cp = await createControlPlane(t);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await cp.deploy(echoManifest(`app${i}`, { count: 1, port: 9600 + i }))).app.id);
  const start = await cp.edgeFeed.rebuild();
  assert.equal(start.endpoints.length, 5);
  const published: EdgeConfig[] = [];
  cp.edgeFeed.subscribe((s) => void published.push(s));
  for (const id of ids) cp.edgeFeed.refresh(id);
  for (const id of ids) cp.edgeFeed.refresh(id);
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(published, [], 'no change, no new version');

  for (const id of ids) await cp.pass(id);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(published.length >= 1 && published.length <= 5, `${published.length} versions for 5 changes`);
  assert.equal((published as EdgeConfig[]).at(-1)?.endpoints.filter((e) => e.backends.length === 1).length, 5);
});

test('an app without endpoints leaves the snapshot; a failed build is retried until it succeeds', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('gone', { count: 1, port: 9700 }));
  const before = await cp.edgeFeed.rebuild();
  assert.deepEqual(before.endpoints.map((e) => e.name), ['gone/9700']);
  await cp.deploy(echoManifest('gone', { count: 1, port: 9700 }).replace(/\[\[endpoints\]\][\s\S]*?target = 8080\n/, ''));
  // The database refuses for a while: the build fails, is logged, and is tried again.
  const realSelect = cp.db.select.bind(cp.db);
  let refusals = 2;
  (cp.db as { select: unknown }).select = (...args: unknown[]) => {
    if (refusals-- > 0) throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
    return (realSelect as (...a: unknown[]) => unknown)(...args);
  };
  t.after(() => void ((cp.db as { select: unknown }).select = realSelect));
  cp.edgeFeed.refresh(app.id);
  const after = await next(cp, before.version);
  assert.deepEqual(after.endpoints, []);
  assert.ok(cp.logs.messages('edge config build failed; retrying').length >= 1);
});

test('the first build publishes a version even with no endpoints, so a new edge gets a snapshot', async (t) => {
  const cp = await createControlPlane(t);
  assert.equal(cp.edgeFeed.current().version, 0);
  const first = await cp.edgeFeed.rebuild();
  assert.ok(first.version > 0);
  assert.deepEqual(first.endpoints, []);
  assert.equal((await cp.edgeFeed.rebuild()).version, first.version, 'and then only on a change');
});

test('snapshot endpoints carry the row id (unique across orgs), the app/port name and a revision that grows with listener settings only', async (t) => {
  const cp = await createControlPlane(t);
  const mine = await cp.deploy(echoManifest('web', { count: 1, port: 9801 }));
  const otherOrg = await createOrg(cp.db, 'other');
  const theirs = await cp.deploys.deploy({ tokenId: 'tok_other', orgId: otherOrg, scope: 'admin', appId: null }, parseManifest(echoManifest('web', { count: 1, port: 9802 })));
  const rows = await cp.db.select().from(endpoints);
  const s1 = await cp.edgeFeed.rebuild();
  assert.deepEqual(s1.endpoints.map((e) => e.id).sort(), rows.map((r) => r.id).sort());
  assert.ok(s1.endpoints.every((e) => e.id.startsWith('ep_')));
  assert.deepEqual(s1.endpoints.map((e) => [e.name, e.revision]).sort(), [['web/9801', 1], ['web/9802', 1]]);
  assert.notEqual(mine.app.id, theirs.app.id);

  // Where its backends are (target) is not a listener setting; who may connect (allow) is.
  const id = (s: EdgeConfig) => s.endpoints.find((e) => e.name === 'web/9801');
  await cp.deploy(echoManifest('web', { count: 1, port: 9801 }).replace('target = 8080', 'target = 8081'));
  const s2 = await cp.edgeFeed.rebuild();
  assert.equal(id(s2)?.revision, 1);
  assert.equal(id(s2)?.id, id(s1)?.id, 'the id stays with the port');
  await cp.deploy(echoManifest('web', { count: 1, port: 9801 }).replace('target = 8080', 'target = 8081\nallow = ["127.0.0.0/8"]'));
  const s3 = await cp.edgeFeed.rebuild();
  assert.equal(id(s3)?.revision, 2);
  assert.deepEqual(id(s3)?.allow, ['127.0.0.0/8']);
});

test('an instance on a swarm is a backend at its node\'s address and the port its task publishes the target on; without that port it is none', async (t) => {
  const cp = await createControlPlane(t);
  const a = await cp.deploy(echoManifest('swarmy', { count: 2, port: 9601 }));
  await cp.converge(a.app.id, async () => (await cp.pass(a.app.id))?.changed === false, 'swarmy running');
  const [one, two] = (await cp.db.select().from(instances).where(eq(instances.appId, a.app.id))).sort((x, y) => x.id.localeCompare(y.id));
  assert.ok(one && two);
  await cp.db.update(instances).set({ address: '198.18.0.1', ports: { '8080': 30001 } }).where(eq(instances.id, one.id));
  // Published, but not the endpoint's target: nothing to route to.
  await cp.db.update(instances).set({ address: '198.18.0.2', ports: { '9999': 30002 } }).where(eq(instances.id, two.id));
  const s = await cp.edgeFeed.rebuild();
  assert.deepEqual(s.endpoints.find((e) => e.app === 'swarmy')?.backends, [{ id: one.id, address: '198.18.0.1', port: 30001 }]);
});
