// A rollout ends when the release runs and the live edges serve its endpoints: it waits while an
// edge has not reported the new settings, fails at once (the previous release serving on) when a
// live edge cannot bind one of its ports, and fails at its deadline naming the edge it waited for.
// With no live edge at all there is nothing to wait for: it succeeds and says nothing serves it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import { apps, deployments, endpoints, events, instances } from '../../../db/schema/index.js';
import { reportBody } from '../../support/edge-report-body.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../../support/memory-control-plane.js';

const EDGE = { id: 'edge_r', name: 'edge-r' };

async function eventsOf(cp: ControlPlane, appId: string, type: string) {
  return cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, type))).orderBy(asc(events.id));
}

async function stateOf(cp: ControlPlane, id: string): Promise<string | undefined> {
  return (await cp.db.select().from(deployments).where(eq(deployments.id, id)))[0]?.state;
}

async function endpointRows(cp: ControlPlane, appId: string) {
  return cp.db.select().from(endpoints).where(eq(endpoints.appId, appId));
}

/** The edge reports every endpoint row of the app at its revision: serving, or failed with `code`. */
async function edgeReports(cp: ControlPlane, appId: string, failed?: { port: number; code: string }): Promise<void> {
  const rows = await endpointRows(cp, appId);
  await cp.edgeReports.record(reportBody(EDGE, rows.map((r) => ({ id: r.id, revision: r.revision, port: r.port, ...(failed?.port === r.port ? { failed: failed.code } : {}) }))));
}

/** Passes until nothing changes: the instances run and are ready. */
async function settle(cp: ControlPlane, appId: string): Promise<void> {
  await cp.converge(appId, async () => (await cp.pass(appId))?.changed === false, 'a quiet pass');
}

test('the rollout waits for a live edge to serve the new settings, then succeeds', async (t) => {
  const cp = await createControlPlane(t);
  await cp.edgeReports.record(reportBody(EDGE, []));
  const v1 = await cp.deploy(echoManifest('waits', { count: 1, port: 9401 }));
  await settle(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'running', 'the instance is ready, and the edge has not reported :9401');

  await edgeReports(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'succeeded');
  assert.deepEqual((await eventsOf(cp, v1.app.id, 'deploy.succeeded'))[0]?.data.served, { 9401: 'served' });
});

test('a live edge that cannot bind a port of the new release fails the rollout at once; the previous release keeps serving', async (t) => {
  const cp = await createControlPlane(t);
  await cp.edgeReports.record(reportBody(EDGE, []));
  const v1 = await cp.deploy(echoManifest('squat', { count: 1, port: 9501 }));
  await settle(cp, v1.app.id);
  await edgeReports(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'succeeded');

  const v2 = await cp.deploy(echoManifest('squat', { count: 1, port: 9502 }));
  await edgeReports(cp, v1.app.id, { port: 9502, code: 'EADDRINUSE' });
  await cp.pass(v1.app.id);
  const [dep] = await cp.db.select().from(deployments).where(eq(deployments.id, v2.deployment.id));
  assert.equal(dep?.state, 'failed');
  assert.equal(dep?.failureReason, 'endpoint :9502 cannot be served: edge "edge-r": cannot listen on 127.0.0.1:9502: address already in use (EADDRINUSE); another program holds the port on that host: stop it, or deploy the endpoint on another port; then deploy again');
  assert.equal((dep?.failure as { reason: string }).reason, 'endpoint-failed');
  assert.match((await eventsOf(cp, v1.app.id, 'deploy.failed'))[0]?.message ?? '', /deploy of v2 failed: endpoint :9502 cannot be served: .*EADDRINUSE.*; v1 keeps serving/);
  const [app] = await cp.db.select().from(apps).where(eq(apps.id, v1.app.id));
  assert.equal(app?.currentReleaseId, v1.release.id);
  assert.deepEqual((await endpointRows(cp, v1.app.id)).map((e) => e.port), [9501], 'the endpoints of v1 are back');
});

test('the previous release is not replaced while a live edge has not reported the new endpoints; when it cannot serve one, v1 serves on, never stopped', async (t) => {
  const cp = await createControlPlane(t);
  await cp.edgeReports.record(reportBody(EDGE, []));
  const v1 = await cp.deploy(echoManifest('held', { count: 1, port: 9801 }));
  await settle(cp, v1.app.id);
  await edgeReports(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'succeeded');
  const running = async () => (await cp.db.select().from(instances).where(eq(instances.appId, v1.app.id))).filter((i) => i.desiredState === 'running');
  const [old] = await running();
  assert.ok(old);

  const v2 = await cp.deploy(echoManifest('held', { count: 1, port: 9802 }));
  // The new instance starts and gets ready; the edge has not said whether it serves :9802.
  await settle(cp, v1.app.id);
  assert.equal(await stateOf(cp, v2.deployment.id), 'running');
  const both = await running();
  assert.deepEqual(both.map((i) => i.releaseId).sort(), [v1.release.id, v2.release.id].sort(), 'v1 still runs beside the ready v2');

  await edgeReports(cp, v1.app.id, { port: 9802, code: 'EADDRINUSE' });
  await settle(cp, v1.app.id);
  assert.equal(await stateOf(cp, v2.deployment.id), 'failed');
  assert.deepEqual((await running()).map((i) => i.id), [old.id], 'the same v1 instance serves on; v2 is gone');
});

test('a deploy that starts no instance (count = 0) still reaches the edge, and succeeds once the edge serves its endpoint', async (t) => {
  const cp = await createControlPlane(t);
  await cp.edgeReports.record(reportBody(EDGE, []));
  const v1 = await cp.deploy(echoManifest('idle', { count: 0, port: 9901 }));
  const [row] = await endpointRows(cp, v1.app.id);
  // Bounded: the feed rebuilds within milliseconds of the commit.
  for (let i = 0; i < 200 && !cp.edgeFeed.current().endpoints.some((e) => e.id === row?.id); i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(cp.edgeFeed.current().endpoints.find((e) => e.id === row?.id)?.backends, [], 'the endpoint is in the snapshot, with no backend');
  await settle(cp, v1.app.id);
  await edgeReports(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'succeeded');
});

test('with no live edge the rollout does not wait, and its success says nothing serves the endpoints', async (t) => {
  const cp = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('alone', { count: 1, port: 9601 }));
  await settle(cp, v1.app.id);
  await cp.pass(v1.app.id);
  assert.equal(await stateOf(cp, v1.deployment.id), 'succeeded');
  const [done] = await eventsOf(cp, v1.app.id, 'deploy.succeeded');
  assert.match(done?.message ?? '', /release v1 runs: web=1; not served: no edge has reported to this API yet \(:9601\)/);
  assert.deepEqual(done?.data.served, { 9601: 'no-edge' });
});

test('a rollout whose endpoint a live edge never reports fails at its deadline, naming the edge and what it serves', async (t) => {
  const cp = await createControlPlane(t);
  await cp.edgeReports.record(reportBody(EDGE, [], { applied: 77, lastError: 'snapshot rejected: bad things' }));
  const v1 = await cp.deploy(echoManifest('late', { count: 1, port: 9701, extra: '' }).replace('drain = "0s"', 'drain = "0s"\ntimeout = "1s"'));
  await settle(cp, v1.app.id);
  await new Promise((r) => setTimeout(r, 1_100));
  // Still live: the edge keeps reporting (a heartbeat), just not this endpoint.
  await cp.edgeReports.record(reportBody(EDGE, [], { applied: 77, lastError: 'snapshot rejected: bad things' }));
  await cp.pass(v1.app.id);
  const [dep] = await cp.db.select().from(deployments).where(eq(deployments.id, v1.deployment.id));
  assert.equal(dep?.state, 'failed');
  assert.equal((dep?.failure as { reason: string }).reason, 'not-served');
  assert.match(dep?.failureReason ?? '', /timed out after 1 s with web=1 ready, but the edge does not serve :9701: edge "edge-r" has not reported revision 1 yet \(it serves snapshot 77; its last error: snapshot rejected: bad things\)/);
});
