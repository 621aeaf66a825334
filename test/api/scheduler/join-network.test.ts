// The upgrade path at server start: instances whose containers run off Pier's network (started
// by a Pier that published ports) are joined to it before the edge's first snapshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { instances } from '../../../db/schema/index.js';
import { joinNetwork } from '../../../api/scheduler/join-network.js';
import { createControlPlane, echoManifest, NETWORK } from '../../support/memory-control-plane.js';

test('joinNetwork joins running containers that are off the network and records their address, so the first snapshot routes to them without a reconcile pass', async (t) => {
  let legacy = true;
  const cp = await createControlPlane(t, {
    health: false,
    runtime: {
      // Started as an older Pier started them: on no network of Pier's.
      beforeStart: async (spec) => {
        if (legacy) spec.network = undefined;
      },
    },
  });
  const { app } = await cp.deploy(echoManifest('legacy', { count: 2 }));
  await cp.pass(app.id);
  legacy = false;
  // What the old server recorded: running, no address (the migration dropped its host ports).
  await cp.db.update(instances).set({ observedState: 'running', health: 'none' }).where(eq(instances.appId, app.id));
  const before = await cp.db.select().from(instances).where(eq(instances.appId, app.id));
  assert.equal(before.length, 2);
  assert.deepEqual(before.map((r) => r.address), [null, null]);
  assert.deepEqual((await cp.edgeFeed.rebuild()).endpoints[0]?.backends, [], 'without the join the edge has no backend');

  assert.equal(await joinNetwork({ db: cp.db, runtime: cp.runtime, network: NETWORK, log: cp.logs.log }), 2);
  const after = await cp.db.select().from(instances).where(eq(instances.appId, app.id));
  for (const row of after) {
    assert.match(row.address ?? '', /^198\.19\./);
    assert.equal((await cp.runtime.inspect(row.containerId as string))?.networks[NETWORK.name], row.address);
  }
  assert.deepEqual([...cp.runtime.runs().values()], [1, 1], 'joined, never restarted');
  const snapshot = await cp.edgeFeed.rebuild();
  assert.deepEqual(snapshot.endpoints[0]?.backends.map((b) => b.address).sort(), after.map((r) => r.address).sort());
  // Run again: nothing left to join.
  assert.equal(await joinNetwork({ db: cp.db, runtime: cp.runtime, network: NETWORK, log: cp.logs.log }), 0);
});
