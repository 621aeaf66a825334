// The whole control plane in one process on the in-memory runtime: many apps deployed at once
// through the real HTTP API all reach running with the database pool at its default size (on
// today's main this deadlocked: held locks took pool connections); and a lock session killed
// mid-reconcile stops that reconcile, the lock is taken again, and nothing is applied twice.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import postgres from 'postgres';
import type { DeployView, DeploymentView, EventView } from '../../api/views.js';
import { LOCK_SESSION_NAME } from '../../db/database.js';
import { captureLog } from '../support/log-capture.js';
import { memoryManifest, startMemoryServer, type MemoryServer } from '../support/memory-server.js';
import { createTestDbUrl } from '../support/test-db.js';

async function json<T>(res: Response, status: number): Promise<T> {
  const body = (await res.json()) as T;
  assert.equal(res.status, status, JSON.stringify(body));
  return body;
}

async function until(what: string, check: () => Promise<boolean>, tries = 600, ms = 100): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, ms));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

async function deploymentState(s: MemoryServer, id: string): Promise<string> {
  return (await json<DeploymentView>(await s.request(`/v1/deployments/${id}`), 200)).state;
}

test('60 apps deployed at once through the API all reach running, with the database pool at its default size', async (t) => {
  const databaseUrl = await createTestDbUrl(t);
  const s = await startMemoryServer({ databaseUrl, log: captureLog('warn').log, runtime: { startLatencyMs: 20 } }, t);
  const apps = Array.from({ length: 60 }, (_, i) => `many-${i}`);
  const deployed = await Promise.all(
    apps.map(async (app, i) => json<DeployView>(await s.request('/v1/deploys', { body: { manifest: memoryManifest(app, 20000 + i) } }), 201)),
  );
  await until('every rollout to succeed', async () => {
    const states = await Promise.all(deployed.map((d) => deploymentState(s, d.deployment.id)));
    assert.ok(!states.includes('failed'), `a rollout failed: ${states.join(',')}`);
    return states.every((st) => st === 'succeeded');
  });
  const containers = await s.runtime.list({});
  assert.equal(containers.filter((c) => c.state === 'running').length, 120);
  assert.ok([...s.runtime.runs().values()].every((n) => n === 1), 'no container started twice');
  const edge = s.server.internals.edgeFeed.current();
  assert.equal(edge.endpoints.filter((e) => e.backends.length === 2).length, 60);
});

test('a lock session killed mid-reconcile: the pass stops, the lock is taken again, nothing is applied twice', async (t) => {
  const databaseUrl = await createTestDbUrl(t);
  if (!databaseUrl) {
    t.diagnostic('needs PostgreSQL: advisory locks and their session exist only there; runs in the DATABASE_URL pass');
    return;
  }
  let release: (() => void) | null = null;
  let held = false;
  const logs = captureLog('info');
  const s = await startMemoryServer(
    {
      databaseUrl,
      log: logs.log,
      runtime: {
        // The first start of the app waits here, its lock held, until the test has killed the session.
        beforeStart: async (spec) => {
          if (held || !spec.name.startsWith('victim-')) return;
          held = true;
          await new Promise<void>((r) => (release = r));
        },
      },
    },
    t,
  );
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  t.after(() => admin.end({ timeout: 1 }));

  const { deployment, app } = await json<DeployView>(await s.request('/v1/deploys', { body: { manifest: memoryManifest('victim', 21000) } }), 201);
  await until('a start held with the lock', async () => release !== null);
  const [before] = await admin`select epoch from app_leases where app_id = ${app.id}`;
  const killed = await admin`select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = ${LOCK_SESSION_NAME} and datname = current_database()`;
  assert.equal(killed.length, 1, 'one lock session');
  await until('the loss noticed', async () => logs.messages('database lock session lost: reconciles of those apps stop and take their locks again').length > 0);
  (release as unknown as () => void)();

  await until('the pass to stop on the lost lock', async () => logs.messages('lost the app lock mid-reconcile; stopped acting on it').some((l) => l.app === app.id));
  await until('the rollout to succeed', async () => (await deploymentState(s, deployment.id)) === 'succeeded');
  const [after] = await admin`select epoch from app_leases where app_id = ${app.id}`;
  assert.ok(Number(after?.epoch) > Number(before?.epoch), `the lease was taken again (epoch ${before?.epoch} → ${after?.epoch})`);

  const runs = s.runtime.runs();
  const containers = await s.runtime.list({ 'dev.pier.app': app.id });
  assert.equal(containers.length, 2, 'two containers, no extra');
  for (const c of containers) assert.equal(runs.get(c.name), 1, `${c.name} was started once`);
  const rows = await admin`select id, container_id from instances where app_id = ${app.id}`;
  assert.equal(rows.length, 2, 'two instances, no extra');
  assert.deepEqual(new Set(rows.map((r) => r.container_id)), new Set(containers.map((c) => c.id)), 'each row bound to its own container');
  const events = (await json<{ events: EventView[] }>(await s.request(`/v1/apps/victim/events?limit=1000`), 200)).events;
  assert.equal(events.filter((e) => e.type === 'instance.started').length, 2, 'one started event per instance');
  assert.equal(events.filter((e) => e.type === 'instance.failed' || e.type === 'instance.exited').length, 0);
});
