// The swarm reconciler on a real database and an in-memory swarm (test/support/memory-swarm.ts):
// a scale down drains exactly the instances that stop before Swarm stops them (the smaller count
// is a new generation of the service), a secret reaches each task's env through a new release's
// service and nowhere else, and a row whose task now publishes another port follows it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { apps, events, instances } from '../../../db/schema/index.js';
import { loadSecretBox } from '../../../api/secret-box.js';
import { swarmInstanceId } from '../../../api/scheduler/swarm-reconciler.js';
import { swarmServiceName } from '../../../api/scheduler/swarm-group.js';
import type { SwarmTask } from '../../../api/runtime/swarm-services.js';
import { createControlPlane, IMAGE, type ControlPlane } from '../../support/memory-control-plane.js';
import { createMemorySwarm } from '../../support/memory-swarm.js';

function manifest(count: number, extra = ''): string {
  return [`app = "sw"`, `image = "${IMAGE}"`, '[processes.web]', 'cmd = ["sleep", "600"]', `count = ${count}`, extra, '[deploy]', 'drain = "0s"'].join('\n');
}

const running = async (cp: ControlPlane, appId: string) =>
  (await cp.db.select().from(instances).where(and(eq(instances.appId, appId), eq(instances.desiredState, 'running'), eq(instances.observedState, 'running')))).sort((a, b) => a.id.localeCompare(b.id));

test('on a swarm, pier scale down drains the instances that stop before Swarm stops their tasks', async (t) => {
  const stops: { task: string; desired: string | undefined; drained: boolean }[] = [];
  let cp: ControlPlane | undefined;
  const swarm = createMemorySwarm({
    beforeStop: async (tasks: SwarmTask[]) => {
      for (const task of tasks) {
        const [row] = await (cp as ControlPlane).db.select().from(instances).where(eq(instances.id, swarmInstanceId('sw', 'web', task.id)));
        stops.push({ task: task.id, desired: row?.desiredState, drained: row?.drainUntil !== null && row?.drainUntil !== undefined });
      }
    },
  });
  cp = await createControlPlane(t, { swarm, health: false });
  const { app } = await cp.deploy(manifest(3));
  await cp.converge(app.id, async () => (await running(cp as ControlPlane, app.id)).length === 3, 'three instances');
  assert.deepEqual(swarm.live(), [swarmServiceName(app, 1, 'web')]);
  const before = new Set((await running(cp, app.id)).map((r) => r.id));

  const scaled = await cp.request('/v1/apps/sw/scale', { body: { counts: { web: 2 } } });
  assert.equal(scaled.status, 200, await scaled.clone().text());
  await cp.converge(app.id, async () => swarm.live().length === 1 && swarm.live()[0] === swarmServiceName(app, 1, 'web', 1) && (await running(cp as ControlPlane, app.id)).length === 2, 'the smaller generation alone');

  // Every task Swarm stopped had left the edge first (drained), none was cut while routed.
  assert.equal(stops.length, 3, 'the old generation\'s three tasks stopped');
  assert.deepEqual(stops.filter((s) => s.desired !== 'stopped' || !s.drained), [], `a task stopped before its instance drained: ${JSON.stringify(stops)}`);
  const drained = await cp.db.select().from(instances).where(eq(instances.lastReason, 'scaled down'));
  assert.deepEqual(new Set(drained.map((r) => r.id)), before);
  assert.equal(swarm.created.get(swarmServiceName(app, 1, 'web', 1))?.labels['dev.pier.swarm-generation'], '1');
  // A scale up only raises the current service's replicas: nothing stops.
  const up = await cp.request('/v1/apps/sw/scale', { body: { counts: { web: 3 } } });
  assert.equal(up.status, 200);
  await cp.converge(app.id, async () => (await running(cp as ControlPlane, app.id)).length === 3, 'three again');
  assert.deepEqual(swarm.live(), [swarmServiceName(app, 1, 'web', 1)]);
  assert.equal(stops.length, 3);
});

test('on a swarm, a secret reaches the tasks through a new release\'s service, and no event or log line holds it', async (t) => {
  const VALUE = 'sw-s3cr3t-Valu3-77aa';
  const dir = await mkdtemp(join(tmpdir(), 'pier-swsecrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const swarm = createMemorySwarm();
  const cp = await createControlPlane(t, { swarm, health: false, secretBox: loadSecretBox(dir) });
  const { app } = await cp.deploy(manifest(2));
  await cp.converge(app.id, async () => (await running(cp, app.id)).length === 2, 'v1 running');

  const set = await cp.request('/v1/apps/sw/secrets', { body: { secrets: { API_KEY: VALUE } } });
  assert.equal(set.status, 200, await set.clone().text());
  assert.equal(((await set.json()) as { release: { version: number } }).release.version, 2, 'a secret change is a new release, so a new service');
  await cp.converge(app.id, async () => swarm.live().join() === swarmServiceName(app, 2, 'web') && (await running(cp, app.id)).length === 2 && (await running(cp, app.id)).every((r) => r.id && swarm.running(swarmServiceName(app, 2, 'web')).length === 2), 'v2 alone');
  assert.equal(swarm.created.get(swarmServiceName(app, 2, 'web'))?.env.API_KEY, VALUE, 'the value is in the service\'s env');
  assert.equal(swarm.created.get(swarmServiceName(app, 1, 'web'))?.env.API_KEY, undefined);

  const all = await cp.db.select().from(events);
  for (const e of all) assert.ok(!JSON.stringify(e).includes('s3cr3t'), `event ${e.type} holds the value`);
  assert.ok(!JSON.stringify(cp.logs.lines).includes('s3cr3t'), 'the log holds the value');
});

test('on a swarm, a row whose task now publishes another port follows it without the task being replaced', async (t) => {
  const swarm = createMemorySwarm();
  const cp = await createControlPlane(t, { swarm, health: false });
  const { app } = await cp.deploy(manifest(1, '[[endpoints]]\nprocess = "web"\nport = 9000\ntarget = 8080'));
  await cp.converge(app.id, async () => (await running(cp, app.id)).length === 1, 'one instance');
  const [task] = swarm.running(swarmServiceName(app, 1, 'web'));
  assert.ok(task);
  const [row] = await running(cp, app.id);
  assert.equal(row?.ports?.['8080'], task.ports[8080]);

  swarm.republish(task.id, 8080, 41_234);
  await cp.pass(app.id);
  const [after] = await running(cp, app.id);
  assert.equal(after?.id, row?.id, 'the same instance');
  assert.equal(after?.ports?.['8080'], 41_234, 'its row names the port the task publishes now');
});

test('on a swarm, per-instance volumes spread one per node are refused at deploy and at pier scale alike (E_SWARM_VOLUMES), and nothing changes', async (t) => {
  const cp = await createControlPlane(t, { swarm: createMemorySwarm(), health: false });
  const volumes = ['[processes.web.placement]', 'spread = "node"', '[[volumes]]', 'name = "data"', 'process = "web"', 'path = "/data"', 'per_instance = true'].join('\n');
  const { app } = await cp.deploy(manifest(1, volumes));
  const scaled = await cp.request('/v1/apps/sw/scale', { body: { counts: { web: 2 } } });
  assert.equal(scaled.status, 422, await scaled.clone().text());
  assert.equal(((await scaled.json()) as { error: { code: string } }).error.code, 'E_SWARM_VOLUMES');
  const [row] = await cp.db.select().from(apps).where(eq(apps.id, app.id));
  assert.equal(row?.scale.web, undefined, 'the count was not changed');
  await assert.rejects(cp.deploy(manifest(2, volumes)), (err: Error & { code?: string }) => err.code === 'E_SWARM_VOLUMES');
});
