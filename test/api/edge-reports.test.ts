// The edges report what they serve (POST /v1/edge/report), and the API says what is true from it:
// each endpoint served / failed (naming edge, address:port and error) / pending / no-edge in
// status, the endpoints list, describe and GET /v1/edges; events when an endpoint cannot bind, binds
// again, or a backend is ejected or restored (once per change, not per report); /healthz tells
// "up" from "serving what is desired". A bad report is 422 E_EDGE_REPORT_INVALID, and only
// org-wide edge (or admin) tokens may report.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, asc, eq, sql } from 'drizzle-orm';
import { edges, endpoints, events } from '../../db/schema/index.js';
import type { EdgeView, EndpointView, ErrorBody, StatusView } from '../../api/views.js';
import { reportBody, type ReportedState } from '../support/edge-report-body.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../support/memory-control-plane.js';
import { createToken } from '../support/test-api.js';

const EDGE = { id: 'edge_one', name: 'edge-one' };
const OTHER = { id: 'edge_two', name: 'edge-two' };

async function report(cp: ControlPlane, edge: { id: string; name: string }, states: ReportedState[], options: Parameters<typeof reportBody>[2] = {}, token?: string): Promise<Response> {
  return cp.request('/v1/edge/report', { body: reportBody(edge, states, options), ...(token ? { token } : {}) });
}

async function ok(res: Response): Promise<unknown> {
  const body = (await res.json()) as unknown;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function endpointOf(cp: ControlPlane, app: string): Promise<EndpointView> {
  const status = (await ok(await cp.request(`/v1/apps/${app}`))) as StatusView;
  const [e] = status.endpoints;
  assert.ok(e, 'the app has an endpoint');
  return e;
}

async function typed(cp: ControlPlane, appId: string, type: string) {
  return cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, type))).orderBy(asc(events.id));
}

test('only org-wide edge or admin tokens report; a bad report is 422 E_EDGE_REPORT_INVALID naming the field; extra fields are kept', async (t) => {
  const cp = await createControlPlane(t);
  const read = await createToken(cp.db, cp.orgId, { scope: 'read' });
  const { app } = await cp.deploy(echoManifest('scoped', { count: 1, port: 9100 }));
  const bound = await createToken(cp.db, cp.orgId, { scope: 'admin', appId: app.id });
  const edgeToken = await createToken(cp.db, cp.orgId, { scope: 'edge' });
  assert.equal((await report(cp, EDGE, [], {}, read)).status, 403);
  assert.equal((await report(cp, EDGE, [], {}, bound)).status, 403);

  const bad = reportBody(EDGE, [{ id: 'ep_x', revision: 1, port: 9100 }]) as unknown as { endpoints: { state: string }[] };
  (bad.endpoints[0] as { state: string }).state = 'sleeping';
  const res = await cp.request('/v1/edge/report', { body: bad, token: edgeToken });
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, 422, JSON.stringify(body));
  assert.equal(body.error.code, 'E_EDGE_REPORT_INVALID');
  assert.match(body.error.message, /endpoints\.0\.state/);
  assert.equal((await cp.request('/v1/edge/report', { body: { edge: EDGE }, token: edgeToken })).status, 422);

  const extra = { ...reportBody(EDGE, []), future: { field: 1 }, edge: { ...reportBody(EDGE, []).edge, region: 'eu' } };
  assert.deepEqual(await ok(await cp.request('/v1/edge/report', { body: extra, token: edgeToken })), { ok: true, heartbeatMs: 10_000 });
  const [row] = await cp.db.select().from(edges);
  assert.deepEqual((row?.report as { future?: unknown }).future, { field: 1 });
  assert.equal(((row?.report as { edge: { region?: string } }).edge).region, 'eu');
});

test('served, pending, failed and no-edge as the edges report them, in status, endpoints, describe, edges and healthz, with an event per change', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('shown', { count: 1, port: 9200 }));
  const [row] = await cp.db.select().from(endpoints).where(eq(endpoints.appId, app.id));
  assert.ok(row);
  const health = async () => ((await (await cp.request('/healthz')).json()) as { status: string; serving: { status: string; edges: { live: number }; endpoints: Record<string, number> } });

  let e = await endpointOf(cp, 'shown');
  assert.equal(e.id, row.id);
  assert.equal(e.name, 'shown/9200');
  assert.deepEqual([e.served.state, e.served.reason], ['no-edge', 'no edge has reported to this API yet']);
  assert.equal((await health()).serving.status, 'no-edge');

  await ok(await report(cp, EDGE, [{ id: row.id, revision: row.revision, port: 9200 }]));
  e = await endpointOf(cp, 'shown');
  assert.deepEqual([e.served.state, e.served.reason], ['served', null]);
  assert.deepEqual(e.served.edges.map((x) => [x.name, x.state]), [['edge-one', 'serving']]);
  assert.equal((await health()).serving.status, 'serving');

  // A second live edge that has not applied this endpoint yet: pending, naming it.
  await ok(await report(cp, OTHER, [], { applied: 5, lastError: 'api unreachable: ECONNREFUSED' }));
  e = await endpointOf(cp, 'shown');
  assert.equal(e.served.state, 'pending');
  assert.match(e.served.reason ?? '', /edge "edge-two" has not reported revision 1 yet \(it serves snapshot 5; its last error: api unreachable: ECONNREFUSED\)/);

  // The second edge cannot bind the port: failed, with the edge, address:port and code; an event.
  await ok(await report(cp, OTHER, [{ id: row.id, revision: row.revision, port: 9200, failed: 'EADDRINUSE' }]));
  await ok(await report(cp, OTHER, [{ id: row.id, revision: row.revision, port: 9200, failed: 'EADDRINUSE' }]));
  e = await endpointOf(cp, 'shown');
  assert.equal(e.served.state, 'failed');
  assert.equal(e.served.reason, 'edge "edge-two": cannot listen on 127.0.0.1:9200: address already in use (EADDRINUSE)');
  assert.match(e.served.hint ?? '', /another program holds the port/);
  const [failedEdge] = e.served.edges.filter((x) => x.state === 'failed');
  assert.deepEqual(failedEdge?.failures.map((f) => [f.address, f.port, f.code]), [['127.0.0.1', 9200, 'EADDRINUSE']]);
  const bindFailed = await typed(cp, app.id, 'endpoint.bind_failed');
  assert.equal(bindFailed.length, 1, 'one event per change, not per report');
  assert.equal(bindFailed[0]?.reason, 'EADDRINUSE');
  assert.match(bindFailed[0]?.message ?? '', /^edge "edge-two" cannot serve :9200: cannot listen on 127\.0\.0\.1:9200: address already in use \(EADDRINUSE\); another program holds the port/);
  assert.deepEqual([bindFailed[0]?.data.address, bindFailed[0]?.data.listenPort, bindFailed[0]?.data.code, (bindFailed[0]?.data.edge as { name: string }).name], ['127.0.0.1', 9200, 'EADDRINUSE', 'edge-two']);
  const list = (await ok(await cp.request('/v1/edges'))) as { edges: EdgeView[] };
  assert.deepEqual(list.edges.map((x) => [x.name, x.live, x.endpoints.failed]), [['edge-one', true, 0], ['edge-two', true, 1]]);
  assert.deepEqual(list.edges[1]?.failures.map((f) => [f.name, f.address, f.port, f.code]), [['shown/9200', '127.0.0.1', 9200, 'EADDRINUSE']]);
  const described = (await ok(await cp.request('/v1/apps/shown/endpoints/9200'))) as { served: string; reason: string };
  assert.equal(described.served, 'failed');
  assert.match(described.reason, /edge "edge-two"/);
  const h = await health();
  assert.deepEqual([h.status, h.serving.status, h.serving.endpoints.failed], ['up', 'not-serving', 1]);

  // It binds again: served, and an endpoint.serving event.
  await ok(await report(cp, OTHER, [{ id: row.id, revision: row.revision, port: 9200 }]));
  assert.equal((await endpointOf(cp, 'shown')).served.state, 'served');
  assert.match((await typed(cp, app.id, 'endpoint.serving'))[0]?.message ?? '', /edge "edge-two" serves :9200 again \(127\.0\.0\.1:9200\)/);

  // New settings (revision 2) are pending until an edge reports them.
  await cp.deploy(echoManifest('shown', { count: 1, port: 9200 }).replace('target = 8080', 'target = 8080\nmax_connections = 5'));
  assert.equal((await endpointOf(cp, 'shown')).revision, 2);
  assert.equal((await endpointOf(cp, 'shown')).served.state, 'pending');

  // Edges that stop reporting are not live: no-edge, and GET /v1/edges still lists them.
  await cp.db.update(edges).set({ lastSeenAt: sql`now() - interval '60 seconds'` });
  e = await endpointOf(cp, 'shown');
  assert.equal(e.served.state, 'no-edge');
  assert.match(e.served.reason ?? '', /no edge has reported in the last 30 s \(last: edge "edge-(one|two)" 60 s ago\)/);
  const stale = (await ok(await cp.request('/v1/edges'))) as { edges: EdgeView[] };
  assert.deepEqual(stale.edges.map((x) => x.live), [false, false]);
  assert.ok((stale.edges[0]?.lastReportAgeSeconds ?? 0) >= 59);
});

test('backends ejected and restored by an edge become events of their app and instance, once per change', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('backs', { count: 1, port: 9300 }));
  const [row] = await cp.db.select().from(endpoints).where(eq(endpoints.appId, app.id));
  assert.ok(row);
  const state = [{ id: row.id, revision: row.revision, port: 9300 }];
  const backend = { endpoint: row.id, id: 'inst_abc' };
  await ok(await report(cp, EDGE, state, { backends: [{ ...backend, ejected: false }] }));
  await ok(await report(cp, EDGE, state, { backends: [{ ...backend, ejected: true, connectFailures: 3, lastError: 'ECONNRESET' }] }));
  await ok(await report(cp, EDGE, state, { backends: [{ ...backend, ejected: true, connectFailures: 3, lastError: 'ECONNRESET' }] }));
  await ok(await report(cp, EDGE, state, { backends: [{ ...backend, ejected: false, connectFailures: 3 }] }));
  const ejected = await typed(cp, app.id, 'backend.ejected');
  const restored = await typed(cp, app.id, 'backend.restored');
  assert.equal(ejected.length, 1);
  assert.equal(restored.length, 1);
  assert.equal(ejected[0]?.instanceId, 'inst_abc');
  assert.match(ejected[0]?.message ?? '', /edge "edge-one" stopped sending :9300 connections to inst_abc after 3 failed connects \(ECONNRESET\)/);
  assert.match(restored[0]?.message ?? '', /edge "edge-one" sends :9300 connections to inst_abc again/);
});
