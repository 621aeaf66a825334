// Deleting an app on the in-memory runtime with the scheduler running (issue 9, defect 3): one
// transaction stops its instances, deletes its endpoints (the edge config drops them and the
// port is free for another app at once), revokes its app-bound tokens, cancels a rollout in
// progress with an event, and leaves a tombstone whose events stay readable by id; the
// reconciler removes every container and the call waits for that.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { apps, deployments, events, portClaims, tokens } from '../../db/schema/index.js';
import { createApi } from '../../api/app.js';
import { findApp, findAppForAudit } from '../../api/auth.js';
import { LABELS } from '../../api/runtime/runtime.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';
import { createToken } from '../support/test-api.js';

test('delete stops and removes the instances, frees the ports, revokes app tokens, cancels the rollout, and keeps the events', async (t) => {
  const cp = await createControlPlane(t, { scheduled: true });
  cp.scheduler.start();
  const { app } = await cp.deploy(echoManifest('doomed', { count: 2, port: 9100 }));
  await cp.converge(app.id, async () => (await cp.db.select().from(deployments).where(and(eq(deployments.appId, app.id), eq(deployments.state, 'succeeded')))).length === 1, 'v1');
  const bound = await createToken(cp.db, cp.orgId, { scope: 'deploy', appId: app.id });
  // v2 targets a port nothing listens on: its rollout stays running (the readiness check fails).
  const v2 = await cp.deploy(echoManifest('doomed', { count: 2, port: 9100, extra: 'env = { V = "2" }' }).replace('target = 8080', 'target = 8081'));
  assert.equal(v2.deployment.state, 'running');
  assert.equal((await cp.runtime.list({ [LABELS.app]: app.id })).length >= 2, true);
  assert.ok(cp.edgeFeed.current().endpoints.some((e) => e.name === 'doomed/9100') || (await cp.edgeFeed.rebuild()).endpoints.some((e) => e.name === 'doomed/9100'));

  const result = await cp.deleter.delete(cp.auth, 'doomed', 30_000);
  assert.equal(result.containersRemaining, 0, 'every container removed within the wait');
  assert.deepEqual(result.ports, [9100]);
  assert.equal(result.tokensRevoked, 1);
  assert.deepEqual(result.deploymentsCancelled, [v2.deployment.id]);
  assert.ok(result.instances >= 2);
  assert.deepEqual(await cp.runtime.list({ [LABELS.app]: app.id }), []);

  const [dep] = await cp.db.select().from(deployments).where(eq(deployments.id, v2.deployment.id));
  assert.deepEqual([dep?.state, dep?.failureReason], ['cancelled', 'the app doomed was deleted']);
  const [token] = await cp.db.select().from(tokens).where(eq(tokens.appId, app.id));
  assert.ok(token?.revokedAt, 'the app-bound token is revoked');
  const api = createApi({ db: cp.db, events: cp.events, runtime: cp.runtime, deploys: cp.deploys, deleter: cp.deleter, edgeFeed: cp.edgeFeed, edgeReports: cp.edgeReports, log: pino({ level: 'silent' }), sharedAddresses: [], ready: () => true });
  assert.equal((await api.request('/v1/apps', { headers: { authorization: `Bearer ${bound}` } })).status, 401);
  assert.ok(!(await cp.edgeFeed.rebuild()).endpoints.some((e) => e.app === 'doomed'), 'the edge no longer serves it');

  // Gone by name; readable for audit by id or as deleted; the name and the port are free.
  await assert.rejects(findApp(cp.db, cp.auth, 'doomed'), { code: 'E_APP_NOT_FOUND' });
  assert.equal((await findAppForAudit(cp.db, cp.auth, app.id, false)).id, app.id);
  assert.equal((await findAppForAudit(cp.db, cp.auth, 'doomed', true)).id, app.id);
  const types = (await cp.db.select().from(events).where(eq(events.appId, app.id))).map((e) => e.type);
  for (const type of ['deploy.started', 'deploy.cancelled', 'app.deleted', 'instance.stopped']) assert.ok(types.includes(type), `${type} in ${types.join(', ')}`);
  const res = await api.request(`/v1/apps/${app.id}/events?type=app.deleted`, { headers: { authorization: `Bearer ${cp.adminToken}` } });
  const body = (await res.json()) as { events: { message: string }[] };
  assert.match(body.events[0]?.message ?? '', /app doomed deleted: \d+ instances to stop, port 9100 freed, 1 token revoked, deployment dep_\S+ cancelled/);

  // Its port claims went with its endpoints: the database holds the port for the taker alone.
  assert.deepEqual(await cp.db.select().from(portClaims).where(eq(portClaims.appId, app.id)), []);
  const other = await cp.deploy(echoManifest('taker', { count: 1, port: 9100 }));
  assert.equal(other.created, true, 'the port is free for another app');
  assert.deepEqual((await cp.db.select().from(portClaims).where(eq(portClaims.port, 9100))).map((c) => c.appId), [other.app.id]);
  const again = await cp.deploy(echoManifest('doomed', { count: 1, port: 9101 }));
  assert.notEqual(again.app.id, app.id, 'the name is free: a new app');
  const rows = await cp.db.select().from(apps).where(eq(apps.name, 'doomed'));
  assert.equal(rows.length, 2);
});

test('deleting an app that is not there is E_APP_NOT_FOUND, and a token bound to another app cannot delete it', async (t) => {
  const cp = await createControlPlane(t);
  await assert.rejects(cp.deleter.delete(cp.auth, 'nothing', 0), { code: 'E_APP_NOT_FOUND' });
  const { app } = await cp.deploy(echoManifest('kept', { count: 1 }));
  const { app: otherApp } = await cp.deploy(echoManifest('other', { count: 1, port: 9001 }));
  await assert.rejects(cp.deleter.delete({ ...cp.auth, appId: otherApp.id, scope: 'deploy' }, 'kept', 0), { code: 'E_APP_NOT_FOUND' });
  await assert.rejects(cp.deleter.delete({ ...cp.auth, scope: 'read' }, 'kept', 0), { code: 'E_FORBIDDEN' });
  assert.equal((await findApp(cp.db, cp.auth, 'kept')).id, app.id);
});
