// The health monitor on the in-memory runtime with exec checks: transitions recorded with the
// check's output, a restart after too many failures, and an engine outage at restart time that
// is recorded and retried instead of ending the process (issue 11, defect 1). And an idle monitor
// reads the database only when poked or at its reread interval, yet finds what it was not told of.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { events, instances } from '../../../db/schema/index.js';
import { createHealthMonitor } from '../../../api/scheduler/health-monitor.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../../support/memory-control-plane.js';

const CHECK = `[processes.web.check]
type = "exec"
command = ["cat", "/tmp/ready"]
interval = "50ms"
timeout = "1s"
unhealthy_threshold = 2
restart_threshold = 3`;

async function eventsOf(cp: ControlPlane, appId: string, type: string) {
  return cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, type)));
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

/** An app of one instance whose check passes, rolled out, with a running health monitor. */
async function healthyApp(t: TestContext, options: { rereadMs?: number; poke?: boolean } = {}) {
  const cp = await createControlPlane(t, { health: false });
  const changed: string[] = [];
  const monitor = createHealthMonitor({
    db: cp.db,
    runtime: cp.runtime,
    transactions: cp.transactions,
    log: cp.logs.log,
    exec: (id, cmd, timeoutMs) => cp.runtime.exec(id, cmd, { timeoutMs }),
    onChange: (appId) => void changed.push(appId),
    tickMs: 20,
    rereadMs: options.rereadMs,
    retryMinMs: 20,
    retryMaxMs: 200,
  });
  monitor.start();
  t.after(() => monitor.close());
  const { app } = await cp.deploy(echoManifest('checked', { count: 1, extra: CHECK }));
  await cp.pass(app.id);
  // As the server does after a pass that started something.
  if (options.poke !== false) monitor.poke();
  const [inst] = await cp.db.select().from(instances).where(eq(instances.appId, app.id));
  assert.ok(inst?.containerId);
  assert.equal(inst.health, 'starting');
  await cp.runtime.exec(inst.containerId, ['touch', '/tmp/ready']);
  await until('healthy', async () => (await eventsOf(cp, app.id, 'instance.healthy')).length === 1);
  await cp.converge(app.id, async () => (await eventsOf(cp, app.id, 'deploy.succeeded')).length === 1, 'the rollout');
  return { cp, app, inst: { id: inst.id, containerId: inst.containerId }, changed };
}

test('a check that starts failing makes the instance unhealthy, then restarts it, each with the check output', async (t) => {
  const { cp, app, inst, changed } = await healthyApp(t);
  const [healthy] = await eventsOf(cp, app.id, 'instance.healthy');
  assert.match(healthy?.message ?? '', /check exec \["cat","\/tmp\/ready"\]: exit code 0/);
  await cp.runtime.exec(inst.containerId, ['rm', '/tmp/ready']);
  await until('restarted', async () => (await eventsOf(cp, app.id, 'instance.restarted')).length === 1);
  const [unhealthy] = await eventsOf(cp, app.id, 'instance.unhealthy');
  assert.match(unhealthy?.message ?? '', /exit code 1: cat: can't open '\/tmp\/ready'/);
  await until('the container stopped', async () => (await cp.runtime.inspect(inst.containerId))?.state === 'exited');
  const [row] = await cp.db.select().from(instances).where(eq(instances.id, inst.id));
  assert.equal(row?.health, 'unhealthy');
  assert.match(row?.lastReason ?? '', /restarted: .*3 failures in a row/);
  assert.ok(changed.includes(app.id), 'the scheduler and the edge were told');
});

test('an engine that is down at restart time is recorded once and retried; the process survives', async (t) => {
  const rejections: unknown[] = [];
  const onRejection = (err: unknown) => void rejections.push(err);
  process.on('unhandledRejection', onRejection);
  t.after(() => void process.off('unhandledRejection', onRejection));

  const { cp, app, inst } = await healthyApp(t);
  await cp.runtime.exec(inst.containerId, ['rm', '/tmp/ready']);
  // Down before the restart: checks fail ("not reachable"), and so does the stop.
  cp.runtime.setAvailable(false);
  await until('the failed restart recorded', async () => (await eventsOf(cp, app.id, 'instance.restart-failed')).length === 1);
  // Several retries happen meanwhile; none records anything new.
  await new Promise((r) => setTimeout(r, 400));
  const failed = await eventsOf(cp, app.id, 'instance.restart-failed');
  assert.equal(failed.length, 1);
  assert.match(failed[0]?.message ?? '', /could not be restarted: Docker is not reachable/);
  assert.ok(cp.logs.messages('health check round failed; retrying').length >= 2, 'retried with backoff');
  assert.equal((await cp.runtime.inspect(inst.containerId).catch(() => null)), null, 'the engine is still down');

  cp.runtime.setAvailable(true);
  await until('the container stopped', async () => (await cp.runtime.inspect(inst.containerId))?.state === 'exited');
  assert.equal((await eventsOf(cp, app.id, 'instance.restarted')).length, 1);
  assert.deepEqual(rejections, []);
});

test('an idle monitor reads the instances once, then again only when poked', async (t) => {
  const cp = await createControlPlane(t, { health: false });
  let reads = 0;
  // Counts the reads of the database the monitor makes (each starts with select).
  const db = new Proxy(cp.db, {
    get(target, key, receiver) {
      if (key === 'select') reads++;
      const value = Reflect.get(target, key, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const monitor = createHealthMonitor({
    db,
    runtime: cp.runtime,
    transactions: cp.transactions,
    log: cp.logs.log,
    exec: (id, cmd, timeoutMs) => cp.runtime.exec(id, cmd, { timeoutMs }),
    onChange: () => undefined,
    tickMs: 10,
    rereadMs: 3_600_000,
  });
  monitor.start();
  t.after(() => monitor.close());
  await until('the first read', async () => reads > 0);
  // Many ticks with nothing to check and nothing new: no read.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(reads, 1);

  const { app } = await cp.deploy(echoManifest('checked', { count: 1, extra: CHECK }));
  await cp.pass(app.id);
  const [inst] = await cp.db.select().from(instances).where(eq(instances.appId, app.id));
  assert.ok(inst?.containerId);
  await cp.runtime.exec(inst.containerId, ['touch', '/tmp/ready']);
  // Not told yet: still not looked at.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await eventsOf(cp, app.id, 'instance.healthy')).length, 0);
  monitor.poke();
  await until('healthy', async () => (await eventsOf(cp, app.id, 'instance.healthy')).length === 1);
});

test('an instance the monitor is not told of (another server started it) is found at the next reread', async (t) => {
  const { cp, app } = await healthyApp(t, { rereadMs: 100, poke: false });
  assert.equal((await eventsOf(cp, app.id, 'instance.healthy')).length, 1);
});
