// Rollouts on the in-memory runtime: a release whose process exits at start fails at once with
// its exit code and last log lines while the previous release keeps serving with its endpoints;
// a deploy that replaces an unfinished one records what superseded it; a process without a check
// counts ready only once it has kept running MIN_UPTIME_MS, so one that exits just after it
// starts fails the deploy instead of passing it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import { apps, deployments, endpoints, events, instances } from '../../../db/schema/index.js';
import { isReady, MIN_UPTIME_MS, nextReadyAt, readyAt } from '../../../api/scheduler/instance-ready.js';
import { createControlPlane, echoManifest, IMAGE, type ControlPlane } from '../../support/memory-control-plane.js';

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

test('a process without a check counts ready only once it has run MIN_UPTIME_MS: one that exits just after it starts fails the deploy', async (t) => {
  const cp = await createControlPlane(t);
  // No endpoint, no check: nothing but its staying up tells that it works.
  const manifest = (cmd: string[]) => ['app = "brief"', `image = "${IMAGE}"`, '[processes.worker]', `cmd = ${JSON.stringify(cmd)}`].join('\n');
  const v1 = await cp.deploy(manifest(['sleep', '3600']));
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.succeeded')).length === 1, 'v1 to count ready after MIN_UPTIME_MS');
  const [started] = await cp.db.select().from(instances).where(eq(instances.appId, v1.app.id));
  const [done] = await eventsOf(cp, v1.app.id, 'deploy.succeeded');
  assert.ok(started?.startedAt && done && done.time.getTime() - started.startedAt.getTime() >= MIN_UPTIME_MS, 'it succeeded no sooner than MIN_UPTIME_MS after its instance started');

  // Running when the pass that started it looks, gone 200 ms later: the deploy fails with its exit code.
  const v2 = await cp.deploy(manifest(['sh', '-c', 'echo up; sleep 0.2; echo down; exit 3']));
  await cp.pass(v1.app.id);
  await cp.pass(v1.app.id);
  await cp.converge(v1.app.id, async () => (await eventsOf(cp, v1.app.id, 'deploy.failed')).length === 1, 'v2 to fail');
  assert.equal((await eventsOf(cp, v1.app.id, 'deploy.succeeded')).length, 1, 'v2 never counted ready');
  const [dep2] = await cp.db.select().from(deployments).where(eq(deployments.id, v2.deployment.id));
  assert.equal(dep2?.state, 'failed');
  assert.equal((dep2?.failure as { exitCode?: number }).exitCode, 3);
  assert.match(dep2?.failureReason ?? '', /exited with code 3; last log lines:\n {2}up\n {2}down/);
  const [app] = await cp.db.select().from(apps).where(eq(apps.id, v1.app.id));
  assert.equal(app?.currentReleaseId, v1.release.id, 'v1 keeps running');
});

test('readyAt: a checked instance is ready once healthy; one without a check MIN_UPTIME_MS after it started; a stopped one never', () => {
  const now = new Date('2026-12-03T00:00:10Z');
  const startedAt = new Date('2026-12-03T00:00:09.5Z');
  const running = { state: 'running' as const, startedAt };
  assert.equal(readyAt({ health: 'none', startedAt }, running, now)?.getTime(), startedAt.getTime() + MIN_UPTIME_MS);
  assert.equal(isReady({ health: 'none', startedAt }, running, now), false);
  assert.equal(isReady({ health: 'none', startedAt }, running, new Date(startedAt.getTime() + MIN_UPTIME_MS)), true);
  assert.equal(isReady({ health: 'healthy', startedAt }, running, now), true);
  assert.equal(readyAt({ health: 'starting', startedAt }, running, now), null);
  assert.equal(readyAt({ health: 'none', startedAt }, { state: 'exited', startedAt }, now), null);
  assert.equal(readyAt({ health: 'none', startedAt }, undefined, now), null);
  // The container's start time wins over the row's; with neither, it counts from now.
  assert.equal(readyAt({ health: 'none', startedAt: null }, running, now)?.getTime(), startedAt.getTime() + MIN_UPTIME_MS);
  assert.equal(readyAt({ health: 'none', startedAt: null }, { state: 'running', startedAt: null }, now)?.getTime(), now.getTime());
  assert.equal(nextReadyAt([{ row: { health: 'none', startedAt }, container: running }, { row: { health: 'healthy', startedAt }, container: running }], now)?.getTime(), startedAt.getTime() + MIN_UPTIME_MS);
});
