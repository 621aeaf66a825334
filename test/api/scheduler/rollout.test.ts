// Rollouts on the in-memory runtime: a release whose process exits at start fails at once with
// its exit code and last log lines while the previous release keeps serving with its endpoints;
// a deploy that replaces an unfinished one records what superseded it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import { apps, deployments, endpoints, events, instances } from '../../../db/schema/index.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../../support/memory-control-plane.js';

async function eventsOf(cp: ControlPlane, appId: string, type: string) {
  return cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, type))).orderBy(asc(events.id));
}

test('a release whose process exits at start fails with its exit code and logs; the previous release keeps serving', async (t) => {
  const cp = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('roll', { count: 2, port: 9001 }));
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.succeeded')).length === 1, 'v1 to roll out');
  const edgeBefore = await cp.edgeFeed.rebuild();
  assert.equal(edgeBefore.endpoints[0]?.backends.length, 2);

  const v2 = await cp.deploy(echoManifest('roll', { count: 2, port: 9002, cmd: ['sh', '-c', 'echo booting; echo "no config" >&2; exit 3'] }));
  assert.deepEqual((await cp.db.select().from(endpoints).where(eq(endpoints.appId, v1.app.id))).map((e) => e.port), [9002]);
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.failed')).length === 1, 'v2 to fail');

  const [failed] = await eventsOf(cp, v1.app.id, 'deploy.failed');
  assert.match(failed?.message ?? '', /deploy of v2 failed: .* exited with code 3; last log lines:\n {2}booting\n {2}no config; v1 keeps serving/);
  const [dep] = await cp.db.select().from(deployments).where(eq(deployments.id, v2.deployment.id));
  assert.equal(dep?.state, 'failed');
  assert.equal((dep?.failure as { exitCode?: number }).exitCode, 3);
  const [app] = await cp.db.select().from(apps).where(eq(apps.id, v1.app.id));
  assert.equal(app?.currentReleaseId, v1.release.id, 'the app went back to v1');
  assert.deepEqual((await cp.db.select().from(endpoints).where(eq(endpoints.appId, v1.app.id))).map((e) => e.port), [9001], 'with its endpoints');
  assert.equal((await eventsOf(cp, v1.app.id, 'endpoint.changed')).at(-1)?.reason, 'rollout-failed');

  await cp.converge(v1.app.id, async () => (await cp.pass(v1.app.id))?.changed === false, 'a quiet pass');
  const running = (await cp.db.select().from(instances).where(eq(instances.appId, v1.app.id))).filter((r) => r.desiredState === 'running');
  assert.deepEqual(running.map((r) => r.releaseId), [v1.release.id, v1.release.id]);
  const edgeAfter = await cp.edgeFeed.rebuild();
  assert.deepEqual(edgeAfter.endpoints.map((e) => [e.name, e.backends.map((b) => b.id).sort()]), edgeBefore.endpoints.map((e) => [e.name, e.backends.map((b) => b.id).sort()]));
});

test('a deploy that replaces an unfinished one records what superseded it, in the same transaction', async (t) => {
  const cp = await createControlPlane(t);
  const first = await cp.deploy(echoManifest('sup', { count: 1 }));
  const second = await cp.deploy(echoManifest('sup', { count: 1, env: { LEVEL: '2' } }));
  const third = await cp.deploys.rollback(cp.auth, 'sup', 1);
  const superseded = await eventsOf(cp, first.app.id, 'deploy.superseded');
  assert.deepEqual(
    superseded.map((e) => [e.deploymentId, e.data.supersededBy]),
    [
      [first.deployment.id, second.deployment.id],
      [second.deployment.id, third.deployment.id],
    ],
  );
  assert.match(superseded[0]?.message ?? '', /the rollout of v1 was superseded by a deploy of v2 \(dep_/);
  assert.match(superseded[1]?.message ?? '', /the rollout of v2 was superseded by a rollback of v3/);
  const states = await cp.db.select({ id: deployments.id, state: deployments.state }).from(deployments).where(eq(deployments.appId, first.app.id));
  assert.deepEqual(new Map(states.map((s) => [s.id, s.state])), new Map([[first.deployment.id, 'superseded'], [second.deployment.id, 'superseded'], [third.deployment.id, 'running']]));
});

test('a rollout whose instance never listens on its target asks for a pass at its deadline and fails then, naming the endpoint', async (t) => {
  const cp = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('late', { count: 1, port: 9003 }));
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.succeeded')).length === 1, 'v1');
  const v2 = await cp.deploy(echoManifest('late', { count: 1, port: 9003, extra: 'env = { V = "2" }' }).replace('target = 8080', 'target = 8081').replace('drain = "0s"', 'drain = "0s"\ntimeout = "1s"'));
  const first = await cp.pass(v1.app.id);
  // Nothing else would come at the deadline (no container event, no check change): the pass says when.
  assert.ok(first?.retryAt && first.retryAt.getTime() <= v2.deployment.deadline.getTime() + 1, `retry at ${first?.retryAt?.toISOString()}, deadline ${v2.deployment.deadline.toISOString()}`);
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.failed')).length === 1, 'v2 to fail at its deadline');
  const [failed] = await eventsOf(cp, v1.app.id, 'deploy.failed');
  assert.match(failed?.message ?? '', /failing checks:\n {2}nothing listens on port 8081 in late-web-\S+ \(endpoint :9003 targets it\): ECONNREFUSED; v1 keeps serving/);
  assert.equal(failed?.reason, 'not-listening');
});
