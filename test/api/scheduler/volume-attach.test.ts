// The reconciler attaches volumes (in-memory runtime, dir driver): per-instance volumes give each
// instance slot its own volume and keep them across a redeploy; a shared volume caps its process
// at one instance; one writer at a time throughout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { openVolumeDriver } from '../../../api/volumes/open-volume-driver.js';
import { instances, volumes } from '../../../db/schema/index.js';
import { tempRoot } from '../../support/btrfs-loop.js';
import { createControlPlane, IMAGE } from '../../support/memory-control-plane.js';

const manifest = (version: string, count: number, perInstance: boolean) => `
app = "store"
image = "${IMAGE}"

[processes.db]
cmd = ["sleep", "1000"]
count = ${count}
env = { VERSION = "${version}" }

[[volumes]]
name = "data"
process = "db"
path = "/data"
per_instance = ${perInstance}

[deploy]
drain = "0ms"
`;

test('per-instance volumes: one per slot, the same ones after a redeploy, never two live holders', async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'dir');
  const cp = await createControlPlane(t, { volumeDriver: driver });
  const v1 = await cp.deploy(manifest('1', 2, true));
  const appId = v1.app.id;
  const running = async (releaseId: string) =>
    (await cp.db.select().from(instances).where(and(eq(instances.appId, appId), eq(instances.releaseId, releaseId), eq(instances.observedState, 'running')))).length;
  await cp.converge(appId, async () => (await running(v1.release.id)) === 2, 'two instances of v1');
  const first = await cp.db.select().from(volumes).where(eq(volumes.appId, appId)).orderBy(volumes.name);
  assert.deepEqual(first.map((v) => [v.name, v.slot]), [['data-0', 0], ['data-1', 1]]);
  assert.equal(new Set(first.map((v) => v.attachedInstanceId)).size, 2, 'each instance its own volume');

  const v2 = await cp.deploy(manifest('2', 2, true));
  await cp.converge(
    appId,
    async () => {
      // One writer per volume at every step: no two live containers hold the same volume.
      const live = (await cp.runtime.list({})).filter((c) => c.state === 'running' && c.labels['dev.pier.app'] === appId);
      assert.ok(live.length <= 2, `at most one live container per slot, saw ${live.length}`);
      return (await running(v2.release.id)) === 2;
    },
    'two instances of v2',
  );
  const after = await cp.db.select().from(volumes).where(eq(volumes.appId, appId)).orderBy(volumes.name);
  assert.deepEqual(after.map((v) => v.id), first.map((v) => v.id), 'the same volumes, none new');
  const v2Instances = new Set((await cp.db.select().from(instances).where(eq(instances.releaseId, v2.release.id))).map((i) => i.id));
  assert.ok(after.every((v) => v2Instances.has(v.attachedInstanceId as string)), 'both attached to instances of v2');
});

test('a shared volume runs its process as one instance even when scaled up', async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'dir');
  const cp = await createControlPlane(t, { volumeDriver: driver });
  const v1 = await cp.deploy(manifest('1', 1, false));
  const appId = v1.app.id;
  await cp.request(`/v1/apps/store/scale`, { method: 'POST', body: { counts: { db: 3 } } });
  await cp.converge(appId, async () => (await cp.pass(appId))?.changed === false, 'a quiet pass');
  const live = (await cp.db.select().from(instances).where(and(eq(instances.appId, appId), eq(instances.desiredState, 'running'))));
  assert.equal(live.length, 1);
  const vols = await cp.db.select().from(volumes).where(eq(volumes.appId, appId));
  assert.deepEqual(vols.map((v) => [v.name, v.attachedInstanceId]), [['data', live[0]?.id]]);
});
