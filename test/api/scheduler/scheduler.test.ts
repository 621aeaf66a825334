// The scheduler on the in-memory runtime: passes run a few at a time (never more than the
// configured concurrency), the resync enqueues only apps that drifted, and a pass that fails
// (engine down) is retried with backoff until it succeeds; passes that keep failing for a reason
// of the app's own go on record once (reconcile.failing), and so does their end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { deployments, events, instances } from '../../../db/schema/index.js';
import { PierError } from '../../../api/pier-error.js';
import pino from 'pino';
import { createScheduler, failureReason, FAILING_AFTER } from '../../../api/scheduler/scheduler.js';
import type { Reconciler } from '../../../api/scheduler/reconciler.js';
import { LABELS } from '../../../api/runtime/runtime.js';
import { createControlPlane, echoManifest, INSTALLATION, type ControlPlane } from '../../support/memory-control-plane.js';

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

async function allSucceeded(cp: ControlPlane): Promise<boolean> {
  const rows = await cp.db.select({ state: deployments.state }).from(deployments);
  return rows.length > 0 && rows.every((r) => r.state === 'succeeded');
}

/** The most passes that ran at once, from the scheduler's begin/end log lines. */
function maxOverlap(cp: ControlPlane): number {
  let active = 0;
  let max = 0;
  for (const line of cp.logs.lines) {
    if (line.msg === 'reconcile begin') max = Math.max(max, ++active);
    if (line.msg === 'reconcile end') active--;
  }
  return max;
}

test('passes run at most `concurrency` at a time, and every app converges', async (t) => {
  const cp = await createControlPlane(t, { scheduled: true, concurrency: 2, runtime: { startLatencyMs: 30 } });
  for (let i = 0; i < 12; i++) await cp.deploy(echoManifest(`app${i}`, { count: 1, port: 9000 + i }));
  await until('every rollout to succeed', () => allSucceeded(cp));
  assert.ok(cp.logs.messages('reconcile begin').length >= 24);
  assert.equal(maxOverlap(cp), 2);
});

test('the resync enqueues only the apps that drifted', async (t) => {
  const cp = await createControlPlane(t, { scheduled: true });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await cp.deploy(echoManifest(`calm${i}`, { count: 2, port: 9100 + i }))).app.id);
  await until('every rollout to succeed', () => allSucceeded(cp));
  await cp.scheduler.idle();
  assert.deepEqual([...(await cp.scheduler.resync()).enqueued], [], 'nothing differs');

  const victim = ids[3] as string;
  const [row] = await cp.db.select().from(instances).where(and(eq(instances.appId, victim), eq(instances.desiredState, 'running')));
  cp.runtime.crash(row?.containerId ?? '');
  assert.deepEqual([...(await cp.scheduler.resync()).enqueued], [[victim, 'an instance exited']]);
  await until('the replacement', async () => (await cp.runtime.list({ [LABELS.app]: victim })).filter((c) => c.state === 'running').length === 2);
  await cp.scheduler.idle();
  await until('a quiet resync', async () => (await cp.scheduler.resync()).enqueued.size === 0);
});

test('a pass that fails while the engine is down is retried with backoff until it succeeds', async (t) => {
  // A slow start, so the engine is gone before the first pass has finished its start.
  const cp = await createControlPlane(t, { scheduled: true, runtime: { startLatencyMs: 200 } });
  await cp.deploy(echoManifest('patient', { count: 1 }));
  cp.runtime.setAvailable(false);
  await until('several failed attempts', async () => cp.logs.messages('reconcile failed; retrying').length >= 3);
  const attempts = cp.logs.messages('reconcile failed; retrying').map((l) => [l.attempt, l.retryInMs]);
  assert.deepEqual(attempts.slice(0, 3), [
    [1, 50],
    [2, 100],
    [3, 200],
  ]);
  cp.runtime.setAvailable(true);
  await until('the rollout to succeed', () => allSucceeded(cp));
  // The outage is the system events' to record (runtime.unavailable), not each app's.
  const types = (await cp.db.select({ type: events.type }).from(events)).map((e) => e.type);
  assert.ok(!types.some((type) => type.startsWith('reconcile.')), types.join(' '));
});

test('passes that keep failing for a reason of the app go on record once, and so does their recovery; an engine outage does not', async (t) => {
  const cp = await createControlPlane(t);
  let refusals = 8;
  // Each pass fails the way one holding a busy volume does, eight times, then passes go through.
  const reconciler: Reconciler = {
    reconcile: async (appId, lease) => {
      if (refusals-- > 0) throw new PierError('E_VOLUME_BUSY', 'volume data of app stuck is busy: a snapshot holds it', { status: 409 });
      return cp.reconciler.reconcile(appId, lease);
    },
  };
  const scheduler = createScheduler({ db: cp.db, runtime: cp.runtime, reconciler, leases: cp.leases, locks: cp.database.locks, installationId: INSTALLATION, log: pino({ level: 'silent' }), concurrency: 2, retryMinMs: 20, retryMaxMs: 100, events: cp.events });
  t.after(() => scheduler.close());
  const { app } = await cp.deploy(echoManifest('stuck', { count: 1 }));
  scheduler.start();
  scheduler.enqueue(app.id);
  await until('the rollout to succeed once the volume is free', () => allSucceeded(cp));
  const recorded = await cp.db.select().from(events).where(eq(events.appId, app.id));
  const failing = recorded.filter((e) => e.type === 'reconcile.failing');
  assert.equal(failing.length, 1, 'one event for the streak, not one per pass');
  assert.equal(failing[0]?.reason, 'E_VOLUME_BUSY');
  assert.match(failing[0]?.message ?? '', /^Pier cannot bring stuck to its desired state: volume data of app stuck is busy: a snapshot holds it \(3 passes failed in a row; retrying/);
  assert.equal(failing[0]?.data.code, 'E_VOLUME_BUSY');
  await until('the recovery to be on record', async () => (await cp.db.select().from(events).where(and(eq(events.appId, app.id), eq(events.type, 'reconcile.recovered')))).length === 1);
  const [recovered] = await cp.db.select().from(events).where(and(eq(events.appId, app.id), eq(events.type, 'reconcile.recovered')));
  assert.match(recovered?.message ?? '', /^stuck reconciles again after \d+ failed passes \(E_VOLUME_BUSY\)$/);
  assert.ok(Number(recovered?.data.attempts) >= FAILING_AFTER);
});

test('failureReason: outages of the engine or the database are not an app\'s failure', () => {
  assert.equal(failureReason(new PierError('E_RUNTIME_UNAVAILABLE', 'Docker is not reachable', { status: 503 })), null);
  assert.equal(failureReason(new PierError('E_DATABASE_UNAVAILABLE', 'down', { status: 503 })), null);
  assert.equal(failureReason(Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' })), null);
  assert.equal(failureReason(new PierError('E_VOLUME_BUSY', 'busy', { status: 409 })), 'E_VOLUME_BUSY');
  assert.equal(failureReason(new Error('something else')), 'error');
});
