// Pier's Swarm services on a real two-node swarm (test/support/swarm-cluster.ts): a group's
// service places its tasks, each answers at its node's address and host-mode published port;
// a port where the task does not listen is refused (no proxy stands in); Swarm replaces a killed
// task, keeps `spread = "node"` when a node drains, moves a task off a node whose engine stopped,
// and the node comes back; the watcher records node.down, node.up and instance.moved; a Pier
// server on the manager lists, drains and activates nodes through `pier nodes`. Every wait is
// bounded; one cluster serves the whole flow, to keep CI time down.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { createSwarmServices, type SwarmServices, type SwarmTask } from '../../../api/runtime/swarm-services.js';
import type { SwarmGroupSpec } from '../../../api/runtime/swarm-service-spec.js';
import { pino } from 'pino';
import { createEventLog } from '../../../api/event-log.js';
import { createSwarmWatcher } from '../../../api/scheduler/swarm-watcher.js';
import { createApp, createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { runPier, startPierServer } from '../../support/pier-process.js';
import type { NodeView } from '../../../api/views.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';
import { requireNamespaces, startSwarmCluster, type SwarmCluster } from '../../support/swarm-cluster.js';
import { exchange } from '../../support/tcp-client.js';

const IMAGE = 'pier-test/busybox:1';

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1_000;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await delay(250);
  }
}

/** Connects once: 'connected', or the socket's error code. */
function connectOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => finish('ETIMEDOUT'), 5_000);
    const finish = (outcome: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    socket.once('connect', () => finish('connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? String(err)));
  });
}

const INSTALLATION = 'inst_swarm_test';

function group(name: string, imageId: string, replicas: number, onePerNode: boolean, appId: string): SwarmGroupSpec {
  return {
    name,
    image: imageId,
    cmd: ['nc', '-ll', '-p', '8080', '-e', 'cat'],
    env: {},
    labels: { 'dev.pier.managed': 'true', 'dev.pier.installation': INSTALLATION, 'dev.pier.app': appId },
    replicas,
    // Nothing listens on 8081: what answers there shows whether a proxy stands in for the task.
    ports: [8080, 8081],
    stopGraceSeconds: 1,
    restart: { delayMs: 100, windowMs: 60_000 },
    placement: { onePerNode, nodeLabels: {} },
  };
}

const running = (tasks: SwarmTask[]) => tasks.filter((k) => k.state === 'running' && k.desiredState === 'running');

/** Each running task echoes at its node's address and published port. */
async function assertServes(services: SwarmServices, cluster: SwarmCluster, name: string, count: number): Promise<SwarmTask[]> {
  const nodes = await services.nodes();
  const tasks = await waitFor(`${count} running tasks of ${name}`, async () => {
    const r = running(await services.tasks(name));
    return r.length === count && r.every((k) => k.ports[8080]) ? r : null;
  });
  for (const task of tasks) {
    const address = nodes.find((n) => n.id === task.nodeId)?.address;
    assert.ok(address && cluster.nodes.some((n) => n.address === address), `task ${task.id} is on a node of the cluster`);
    const payload = `hi ${randomBytes(4).toString('hex')}`;
    // nc listens a moment after the task is running: a refused or empty answer means "retry".
    const echoed = await waitFor(`the echo of ${task.id} at ${address}:${task.ports[8080]}`, async () => (await exchange(address, task.ports[8080] ?? 0, payload)).toString());
    assert.equal(echoed, payload);
  }
  return tasks;
}

test('swarm services: placed over two nodes, served at node address and published port; a killed task is replaced; spread holds through a drain; a stopped node\'s task moves and the node comes back', async (t) => {
  if (!(await requireDocker(t)) || !(await requireNamespaces(t))) return;
  if (process.env.DATABASE_URL) {
    // CI runs the suite once per database and is near its time budget: the swarm runs on the
    // embedded-database pass only. The watcher's database work runs on both
    // (test/api/scheduler/swarm-watcher.test.ts).
    t.skip('the swarm runs on the embedded-database pass only (CI time)');
    return;
  }
  const imageId = await ensureBusyboxImage();
  // Durations are reported (t.diagnostic), never asserted: the machine is shared.
  const since = (start: number) => `${((performance.now() - start) / 1000).toFixed(1)} s`;
  let mark = performance.now();
  const cluster = await startSwarmCluster(t, { images: [IMAGE] });
  t.diagnostic(`two-node swarm up (namespaces, two engines, init, join, image loaded on both): ${since(mark)}`);
  const services = createSwarmServices({ socketPath: cluster.manager.socket });

  await services.requireManager();
  await assert.rejects(createSwarmServices({ socketPath: cluster.worker.socket }).requireManager(), (err: Error & { code?: string }) => err.code === 'E_NOT_SWARM_MANAGER');

  const nodes = await services.nodes();
  assert.deepEqual(nodes.map((n) => n.address), [cluster.manager.address, cluster.worker.address]);
  assert.deepEqual(nodes.map((n) => [n.role, n.state, n.availability]), [['manager', 'ready', 'active'], ['worker', 'ready', 'active']]);
  assert.ok(nodes.every((n) => n.capacity.cpus > 0 && n.capacity.memoryBytes > 0));
  const [managerNode, workerNode] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];

  // The image by id, present on both nodes: no registry is asked.
  // The watcher records what Swarm does as Pier's events, for the apps this database knows.
  const db = (await createTestDb(t)).db;
  const orgId = await createOrg(db, 'swarm');
  const spreadApp = await createApp(db, orgId, 'spread');
  const freeApp = await createApp(db, orgId, 'free');
  const events = createEventLog(db);
  const spread = group(`spread-${randomBytes(3).toString('hex')}`, imageId, 2, true, spreadApp);
  const free = group(`free-${randomBytes(3).toString('hex')}`, imageId, 2, false, freeApp);
  assert.equal((await services.ensureService(spread)).created, true);
  assert.equal((await services.ensureService(free)).created, true);
  assert.equal((await services.ensureService(spread)).created, false, 'ensuring again finds the service');
  assert.deepEqual((await services.listServices({ 'dev.pier.app': spreadApp })).map((s) => [s.name, s.replicas]), [[spread.name, 2]]);
  const watcher = createSwarmWatcher({ db, events, services, installationId: INSTALLATION, log: pino({ level: 'silent' }), intervalMs: 300 });
  watcher.start();
  t.after(() => watcher.close());
  const recorded = async (type: string) => (await events.list({ orgId, type })).map((e) => ({ appId: e.appId, reason: e.reason, data: e.data, message: e.message }));

  const spreadTasks = await assertServes(services, cluster, spread.name, 2);
  assert.deepEqual(new Set(spreadTasks.map((k) => k.nodeId)), new Set([managerNode.id, workerNode.id]), 'one task on each node');
  // From another machine (the host's leg), a published port reaches the task's own network stack:
  // where it does not listen the connection is refused, not accepted by docker-proxy.
  for (const task of spreadTasks) {
    const address = nodes.find((n) => n.id === task.nodeId)!.address;
    assert.ok(task.ports[8081], 'both ports are published');
    assert.equal(await connectOutcome(address, task.ports[8081]!), 'ECONNREFUSED', `${address}:${task.ports[8081]} refuses`);
  }

  // Kill a task's container through its node's engine: Swarm replaces it in the same slot.
  const victim = spreadTasks.find((k) => k.nodeId === workerNode.id)!;
  mark = performance.now();
  await cluster.worker.docker(['kill', victim.containerId!]);
  const replaced = await waitFor('the killed task to be replaced', async () => {
    const all = await services.tasks(spread.name);
    const old = all.find((k) => k.id === victim.id);
    const fresh = running(all).find((k) => k.slot === victim.slot && k.id !== victim.id);
    return old && old.state === 'failed' && fresh ? { old, fresh } : null;
  });
  t.diagnostic(`killed task replaced and running: ${since(mark)}`);
  assert.equal(replaced.old.exitCode, 137);
  assert.match(replaced.old.error ?? '', /exit \(137\)/);
  await assertServes(services, cluster, spread.name, 2);

  // Drain the worker: its spread task cannot double up on the manager, so it waits.
  await services.setAvailability(workerNode.id, 'drain');
  await waitFor('the drained node to hold no running task', async () => running(await services.tasks(spread.name)).length === 1 && running(await services.tasks(free.name)).every((k) => k.nodeId === managerNode.id) && running(await services.tasks(free.name)).length === 2);
  assert.equal((await services.nodes()).find((n) => n.id === workerNode.id)?.availability, 'drain');
  assert.ok((await services.tasks(spread.name)).some((k) => k.state === 'pending' && k.desiredState === 'running'), 'the spread task waits for a node');
  const drained = await waitFor('instance.moved of the drained node', async () => {
    const moves = await recorded('instance.moved');
    return moves.length > 0 ? moves : null;
  });
  assert.deepEqual(drained.map((m) => [m.appId, m.reason, m.data.from, m.data.to]), [[freeApp, 'node-drained', cluster.worker.address, cluster.manager.address]]);
  assert.match(drained[0]?.message ?? '', /moved from .* to .*: node drained/);
  await services.setAvailability(workerNode.id, 'active');
  await assertServes(services, cluster, spread.name, 2);
  await assert.rejects(services.setAvailability('no-such-node', 'drain'), (err: Error & { code?: string }) => err.code === 'E_NODE_NOT_FOUND');

  // Scale the free group so it has a task on the worker again (Swarm does not move tasks back).
  await services.scaleService(free.name, 3);
  const freeTasks = await assertServes(services, cluster, free.name, 3);
  assert.ok(freeTasks.some((k) => k.nodeId === workerNode.id));

  // Stop the worker's engine: the node goes down and the free group's task moves to the manager.
  mark = performance.now();
  await cluster.worker.stop();
  await waitFor('the worker to be down', async () => (await services.nodes()).find((n) => n.id === workerNode.id)?.state === 'down', 60);
  t.diagnostic(`worker engine stopped, node down: ${since(mark)}`);
  const moved = await assertServes(services, cluster, free.name, 3);
  t.diagnostic(`worker engine stopped, its task moved and serving: ${since(mark)}`);
  assert.ok(moved.every((k) => k.nodeId === managerNode.id), 'every free task runs on the manager');
  const downs = await waitFor('node.down recorded', async () => {
    const d = await recorded('node.down');
    return d.length > 0 ? d : null;
  });
  assert.deepEqual(downs.map((d) => [d.reason, d.data.address]), [['node-down', cluster.worker.address]]);
  const moves = await waitFor('instance.moved off the stopped node', async () => {
    const m = (await recorded('instance.moved')).filter((e) => e.reason === 'node-down');
    return m.length > 0 ? m : null;
  });
  assert.deepEqual(moves.map((m) => [m.appId, m.data.from, m.data.to]), [[freeApp, cluster.worker.address, cluster.manager.address]]);

  // Start it again: it rejoins, and the spread task that waited runs there.
  mark = performance.now();
  await cluster.worker.start();
  await waitFor('the worker to be ready', async () => (await services.nodes()).find((n) => n.id === workerNode.id)?.state === 'ready', 60);
  const ups = await waitFor('node.up recorded', async () => {
    const u = await recorded('node.up');
    return u.length > 0 ? u : null;
  });
  assert.deepEqual(ups.map((u) => u.data.address), [cluster.worker.address]);
  const back = await assertServes(services, cluster, spread.name, 2);
  t.diagnostic(`worker engine started, node ready and its spread task serving: ${since(mark)}`);
  assert.deepEqual(new Set(back.map((k) => k.nodeId)), new Set([managerNode.id, workerNode.id]));

  // A Pier server whose DOCKER_HOST is the manager lists the swarm's nodes; `pier nodes` drains
  // and activates one.
  const server = await startPierServer(t, { DOCKER_HOST: cluster.manager.host, PIER_NETWORK_SUBNET: '198.19.200.0/24' });
  const pier = async <T>(args: string[]): Promise<T> => {
    const r = await runPier(args, server.env);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  const listed = (await pier<{ nodes: NodeView[] }>(['nodes', 'list', '--json'])).nodes;
  assert.deepEqual(listed.map((n) => [n.address, n.role, n.state, n.availability]), [[cluster.manager.address, 'manager', 'ready', 'active'], [cluster.worker.address, 'worker', 'ready', 'active']]);
  assert.ok(listed.every((n) => n.capacity && n.capacity.cpus > 0 && n.engineVersion));
  assert.equal((await pier<{ node: NodeView }>(['nodes', 'drain', cluster.worker.address, '--json'])).node.availability, 'drain');
  assert.equal((await pier<{ node: NodeView }>(['nodes', 'describe', cluster.worker.address, '--json'])).node.availability, 'drain');
  assert.equal((await services.nodes()).find((n) => n.id === workerNode.id)?.availability, 'drain', 'Swarm has it drained');
  assert.equal((await pier<{ node: NodeView }>(['nodes', 'activate', workerNode.id, '--json'])).node.availability, 'active');
  const text = await runPier(['nodes', 'list'], server.env);
  assert.match(text.stdout, new RegExp(`^\\S+\\s+${cluster.worker.address.replace(/\./g, '\\.')}\\s+ready\\s+active\\s+worker\\s`, 'm'));
  await server.stop();

  await services.removeService(spread.name);
  await services.removeService(spread.name); // already gone is fine
  assert.deepEqual(await services.listServices({ 'dev.pier.app': spreadApp }), []);
  // The kill was replaced on the same node: not a move. Nothing was reported twice.
  assert.deepEqual((await recorded('instance.moved')).map((m) => m.reason), ['node-drained', 'node-down']);
  assert.equal((await recorded('node.down')).length, 1);
});
