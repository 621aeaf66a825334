// The swarm watcher's bookkeeping on a real database, with the swarm's answers scripted (the
// watcher on a real swarm is in test/api/runtime/swarm-services.test.ts): a failed look loses
// nothing and reports nothing twice; moves are recorded for apps this database knows only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { createEventLog } from '../../../api/event-log.js';
import type { SwarmNodeInfo, SwarmServices, SwarmTask } from '../../../api/runtime/swarm-services.js';
import { createSwarmWatcher } from '../../../api/scheduler/swarm-watcher.js';
import { createApp, createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';

function node(id: string, state = 'ready'): SwarmNodeInfo {
  return { id, hostname: id, address: `198.18.9.${id === 'a' ? 1 : 2}`, state, availability: 'active', role: 'worker', labels: {}, capacity: { cpus: 1, memoryBytes: 1 }, engineVersion: null };
}
function task(id: string, slot: number, nodeId: string, state: SwarmTask['state'] = 'running'): SwarmTask {
  return { id, serviceId: 's', slot, nodeId, state, desiredState: state === 'running' ? 'running' : 'shutdown', error: null, containerId: null, exitCode: null, ports: {}, published: {}, updatedAt: null };
}

test('with two watchers on one database (two API servers), each change is recorded once; the other takes over when the first closes', async (t) => {
  const database = await createTestDb(t);
  const { db } = database;
  const orgId = await createOrg(db, 'o');
  const events = createEventLog(db);
  const swarm = { nodes: [node('a'), node('b')] };
  const services = { listServices: async () => [], tasks: async () => [], nodes: async () => swarm.nodes } as unknown as SwarmServices;
  const make = () => createSwarmWatcher({ db, events, services, installationId: 'inst', log: pino({ level: 'silent' }), locks: database.locks });
  const [first, second] = [make(), make()];
  await first.check();
  await second.check();
  swarm.nodes = [node('a'), node('b', 'down')];
  assert.equal((await first.check()).length, 1);
  assert.deepEqual(await second.check(), [], 'the second sees it but does not record it');
  await first.close();
  swarm.nodes = [node('a'), node('b')];
  assert.deepEqual((await second.check()).map((c) => c.type), ['node.up'], 'the second records once the first is gone');
  assert.deepEqual((await events.list({ orgId })).map((e) => e.type), ['node.down', 'node.up']);
  await second.close();
});

test('a failed look loses nothing and reports nothing twice; a move of an app the database does not know is not recorded', async (t) => {
  const { db } = await createTestDb(t);
  const orgId = await createOrg(db, 'o');
  const appId = await createApp(db, orgId, 'web');
  const events = createEventLog(db);
  const swarm = {
    fail: false,
    nodes: [node('a'), node('b')],
    services: [
      { id: 's1', name: 'pier-web-v1-web', labels: { 'dev.pier.app': appId }, replicas: 1 },
      { id: 's2', name: 'pier-gone-v1-web', labels: { 'dev.pier.app': 'app_unknown' }, replicas: 1 },
    ],
    tasks: { 'pier-web-v1-web': [task('t1', 1, 'b')], 'pier-gone-v1-web': [task('u1', 1, 'b')] } as Record<string, SwarmTask[]>,
  };
  const services = {
    listServices: async () => {
      if (swarm.fail) throw new Error('manager unreachable');
      return swarm.services;
    },
    tasks: async (name: string) => swarm.tasks[name] ?? [],
    nodes: async () => swarm.nodes,
  } as unknown as SwarmServices;
  const watcher = createSwarmWatcher({ db, events, services, installationId: 'inst', log: pino({ level: 'silent' }) });

  assert.deepEqual(await watcher.check(), [], 'the first look is the baseline');
  swarm.nodes = [node('a'), node('b', 'down')];
  swarm.tasks = { 'pier-web-v1-web': [task('t1', 1, 'b', 'orphaned'), task('t2', 1, 'a')], 'pier-gone-v1-web': [task('u1', 1, 'b', 'orphaned'), task('u2', 1, 'a')] };
  swarm.fail = true;
  await assert.rejects(watcher.check(), /manager unreachable/);
  swarm.fail = false;
  const changes = await watcher.check();
  assert.deepEqual(changes.map((c) => c.type).sort(), ['instance.moved', 'instance.moved', 'node.down']);
  assert.deepEqual(await watcher.check(), [], 'the next look finds nothing new');

  const recorded = await events.list({ orgId });
  assert.deepEqual(recorded.map((e) => [e.type, e.appId, e.reason]), [['node.down', null, 'node-down'], ['instance.moved', appId, 'node-down']]);
  assert.deepEqual(recorded[1]?.data, { service: 'pier-web-v1-web', slot: 1, taskId: 't2', from: '198.18.9.2', to: '198.18.9.1' });
  await watcher.close();
});
