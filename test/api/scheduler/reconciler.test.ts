// The reconciler on the in-memory runtime: starts, exits, scale-down, and the two-phase start —
// a start cut between its row and its container is finished (or its container adopted) by a
// later pass, never run twice; a stale lease writes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { events, instances } from '../../../db/schema/index.js';
import { LABELS } from '../../../api/runtime/runtime.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../../support/memory-control-plane.js';

async function rows(cp: ControlPlane, appId: string) {
  return cp.db.select().from(instances).where(eq(instances.appId, appId));
}

async function eventTypes(cp: ControlPlane, appId: string, type: string) {
  return cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, type)));
}

async function runningCount(cp: ControlPlane, appId: string): Promise<number> {
  return (await cp.runtime.list({ [LABELS.app]: appId })).filter((c) => c.state === 'running').length;
}

test('a deploy starts its instances, each with one started event, and the rollout succeeds', async (t) => {
  const cp = await createControlPlane(t);
  const { app, deployment } = await cp.deploy(echoManifest('web', { count: 2 }));
  await cp.converge(app.id, async () => (await eventTypes(cp, app.id, 'deploy.succeeded')).length === 1, 'the rollout to succeed');
  const all = await rows(cp, app.id);
  assert.equal(all.length, 2);
  for (const r of all) {
    assert.equal(r.observedState, 'running');
    assert.ok(r.containerId);
    assert.match(r.address ?? '', /^198\.19\./, 'an address on the network');
  }
  assert.equal(await runningCount(cp, app.id), 2);
  assert.equal((await eventTypes(cp, app.id, 'instance.started')).length, 2);
  assert.deepEqual([...cp.runtime.runs().values()], [1, 1]);
  // More passes change nothing and record nothing.
  const before = (await cp.db.select().from(events)).length;
  for (let i = 0; i < 3; i++) assert.equal((await cp.pass(app.id))?.changed, false);
  assert.equal((await cp.db.select().from(events)).length, before);
  assert.equal(deployment.state, 'running');
});

test('an instance that crashes is recorded once with its reason and replaced', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('crashy', { count: 1 }));
  // After the rollout: a crash during one fails the deploy instead (rollout.test.ts).
  await cp.converge(app.id, async () => (await eventTypes(cp, app.id, 'deploy.succeeded')).length === 1, 'the rollout');
  const [first] = await rows(cp, app.id);
  assert.ok(first?.containerId);
  cp.runtime.crash(first.containerId, { oom: true });
  await cp.converge(app.id, async () => (await rows(cp, app.id)).length === 2 && (await runningCount(cp, app.id)) === 1, 'a replacement');
  await cp.pass(app.id);
  const exited = await eventTypes(cp, app.id, 'instance.exited');
  assert.equal(exited.length, 1);
  assert.equal(exited[0]?.reason, 'oom');
  const [old] = (await rows(cp, app.id)).filter((r) => r.id === first.id);
  assert.deepEqual([old?.desiredState, old?.observedState, old?.lastOom, old?.lastExitCode], ['stopped', 'exited', true, 137]);
});

test('a start cut off by an engine outage after its row was written is finished by a later pass, not failed', async (t) => {
  let cut = true;
  const cp: ControlPlane = await createControlPlane(t, {
    runtime: {
      // The engine goes away between creating the container and starting it.
      beforeStart: async () => {
        if (cut) cp.runtime.setAvailable(false);
        cut = false;
      },
    },
  });
  const { app } = await cp.deploy(echoManifest('outage', { count: 1 }));
  await assert.rejects(cp.pass(app.id), { code: 'E_RUNTIME_UNAVAILABLE' });
  const [pending] = await rows(cp, app.id);
  assert.ok(pending);
  assert.deepEqual([pending.containerId, pending.observedState, pending.desiredState], [null, 'starting', 'running']);
  cp.runtime.setAvailable(true);
  await cp.converge(app.id, async () => (await runningCount(cp, app.id)) === 1, 'the instance to run');
  const all = await rows(cp, app.id);
  assert.equal(all.length, 1, 'the same row, no second instance');
  assert.equal(all[0]?.id, pending.id);
  assert.equal(cp.runtime.runs().get(pending.id), 1);
  assert.equal((await eventTypes(cp, app.id, 'instance.failed')).length, 0);
  assert.equal((await eventTypes(cp, app.id, 'instance.started')).length, 1);
});

test('a holder that lost its lock mid-start writes nothing more; the next holder adopts the container instead of starting another', async (t) => {
  let hold: (() => void) | null = null;
  let held: Promise<void> | null = null;
  const cp = await createControlPlane(t, {
    runtime: {
      beforeStart: () => {
        if (held) return Promise.resolve();
        held = new Promise<void>((r) => (hold = r));
        return held;
      },
    },
  });
  const { app } = await cp.deploy(echoManifest('fenced', { count: 1 }));
  // A first holder, with a lock we can take away.
  const lost = new AbortController();
  const lease = await cp.leases.acquire(app.id, lost.signal);
  assert.ok(lease);
  const first = cp.reconciler.reconcile(app.id, lease);
  await waitUntil(() => hold !== null);
  // Its lock is lost (its session died) and another server takes the app: a new epoch.
  lost.abort(new Error('lock session closed'));
  const second = await cp.leases.acquire(app.id, new AbortController().signal);
  assert.ok(second && second.epoch === lease.epoch + 1);
  (hold as unknown as () => void)();
  await assert.rejects(first, { code: 'E_LEASE_LOST' });
  const [row] = await rows(cp, app.id);
  assert.equal(row?.containerId, null, 'the stale holder did not record its container');

  // The new holder finds the container under the row's name and adopts it.
  await cp.converge(app.id, async () => (await rows(cp, app.id))[0]?.containerId != null, 'the container to be adopted');
  assert.equal(cp.runtime.runs().get(row?.id ?? ''), 1, 'the container was started once');
  assert.equal((await rows(cp, app.id)).length, 1);
  assert.equal((await eventTypes(cp, app.id, 'instance.started')).length, 1);
});

test('a write under a stale epoch fails with E_LEASE_LOST and changes nothing', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('stale', { count: 1 }));
  const old = await cp.leases.acquire(app.id, new AbortController().signal);
  assert.ok(old);
  await cp.leases.acquire(app.id, new AbortController().signal);
  await assert.rejects(
    cp.leases.fenced(old, (tx) => tx.record({ orgId: cp.orgId, appId: app.id, type: 'test.stale', message: 'must not land' })),
    { code: 'E_LEASE_LOST' },
  );
  assert.equal((await eventTypes(cp, app.id, 'test.stale')).length, 0);
  await assert.rejects(cp.reconciler.reconcile(app.id, old), { code: 'E_LEASE_LOST' });
  assert.equal((await rows(cp, app.id)).length, 0, 'the stale pass started nothing');
});

test('scaling down drains and stops the extra instance, with one stopped event', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('shrink', { count: 3 }));
  await cp.converge(app.id, async () => (await runningCount(cp, app.id)) === 3, 'three instances');
  await cp.deploys.scale(cp.auth, 'shrink', { web: 1 });
  await cp.converge(app.id, async () => (await runningCount(cp, app.id)) === 1, 'one instance');
  await cp.pass(app.id);
  const stopped = await eventTypes(cp, app.id, 'instance.stopped');
  assert.equal(stopped.length, 2);
  assert.ok(stopped.every((e) => e.reason === 'scaled-down'), JSON.stringify(stopped.map((e) => e.reason)));
  const states = (await rows(cp, app.id)).map((r) => `${r.desiredState}/${r.observedState}`).sort();
  assert.deepEqual(states, ['running/running', 'stopped/stopped', 'stopped/stopped']);
});

async function waitUntil(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!check()) throw new Error('gave up waiting');
}

test('a running container that is not on Pier\'s network (started before it existed) is joined to it, not restarted, and the edge gets its address', async (t) => {
  let legacy = true;
  const cp = await createControlPlane(t, {
    runtime: {
      // The first container starts as an older Pier started them: on no network of Pier's.
      beforeStart: async (spec) => {
        if (legacy) spec.network = undefined;
        legacy = false;
      },
    },
  });
  const { app } = await cp.deploy(echoManifest('legacy', { count: 1 }));
  await cp.pass(app.id);
  const [before] = await rows(cp, app.id);
  assert.ok(before?.containerId);
  assert.equal(before.address, null, 'no address on the network yet');
  assert.deepEqual(Object.keys((await cp.runtime.inspect(before.containerId))?.networks ?? {}), []);

  await cp.converge(app.id, async () => (await eventTypes(cp, app.id, 'deploy.succeeded')).length === 1, 'the rollout, once the instance is reachable');
  const [after] = await rows(cp, app.id);
  assert.match(after?.address ?? '', /^198\.19\./);
  assert.equal((await cp.runtime.inspect(before.containerId))?.networks.pier, after?.address);
  assert.deepEqual([...cp.runtime.runs().values()], [1], 'joined, never restarted');
  const snapshot = await cp.edgeFeed.rebuild();
  assert.deepEqual(snapshot.endpoints[0]?.backends.map((b) => [b.address, b.port]), [[after?.address, 8080]]);
});
