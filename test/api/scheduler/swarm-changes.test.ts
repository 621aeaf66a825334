// Node and task changes between two looks at the swarm, as Pier's events (pure).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SwarmNodeInfo, SwarmTask } from '../../../api/runtime/swarm-services.js';
import { lastRunning, swarmChanges } from '../../../api/scheduler/swarm-changes.js';

function node(id: string, address: string, state = 'ready', availability: SwarmNodeInfo['availability'] = 'active'): SwarmNodeInfo {
  return { id, hostname: `h-${id}`, address, state, availability, role: 'worker', labels: {}, capacity: { cpus: 1, memoryBytes: 1 }, engineVersion: null };
}
function task(id: string, slot: number, nodeId: string, state: SwarmTask['state'] = 'running', desiredState = 'running'): SwarmTask {
  return { id, serviceId: 's', slot, nodeId, state, desiredState, error: null, containerId: null, exitCode: null, ports: {}, published: {}, updatedAt: null };
}

test('a node that stops being ready is node.down; one that is ready again is node.up; nothing when nothing changed', () => {
  const before = { nodes: [node('a', '198.18.1.1'), node('b', '198.18.1.2', 'down')], tasks: {} };
  const after = { nodes: [node('a', '198.18.1.1', 'down'), node('b', '198.18.1.2')], tasks: {} };
  assert.deepEqual(swarmChanges(before, after).map((c) => [c.type, 'nodeId' in c ? c.nodeId : '']), [['node.down', 'a'], ['node.up', 'b']]);
  assert.deepEqual(swarmChanges(after, after), []);
});

test('a slot that runs a new task on another node is instance.moved, with the reason: node down, drained, or the task failed', () => {
  const web = [task('t1', 1, 'a'), task('t2', 2, 'b')];
  const nodes = [node('a', '198.18.1.1'), node('b', '198.18.1.2')];
  const before = { nodes, tasks: { web } };

  const down = swarmChanges(before, { nodes: [nodes[0]!, node('b', '198.18.1.2', 'down')], tasks: { web: [task('t1', 1, 'a'), task('t2', 2, 'b', 'running', 'shutdown'), task('t3', 2, 'a')] } });
  const moved = down.find((c) => c.type === 'instance.moved');
  assert.deepEqual(moved && { ...moved, message: undefined }, { type: 'instance.moved', service: 'web', slot: 2, from: '198.18.1.2', to: '198.18.1.1', taskId: 't3', reason: 'node-down', message: undefined });
  assert.match(moved?.message ?? '', /web\.2 moved from 198\.18\.1\.2 to 198\.18\.1\.1: node down/);

  const drained = swarmChanges(before, { nodes: [nodes[0]!, node('b', '198.18.1.2', 'ready', 'drain')], tasks: { web: [task('t1', 1, 'a'), task('t3', 2, 'a')] } });
  assert.deepEqual(drained.map((c) => 'reason' in c && c.reason), ['node-drained']);
  // Drained, then its heartbeat missed: the drain moved it.
  const drainedDown = swarmChanges(before, { nodes: [nodes[0]!, node('b', '198.18.1.2', 'down', 'drain')], tasks: { web: [task('t1', 1, 'a'), task('t3', 2, 'a')] } });
  assert.deepEqual(drainedDown.flatMap((c) => ('reason' in c ? [c.reason] : [])), ['node-drained']);

  const failed = swarmChanges(before, { nodes, tasks: { web: [task('t1', 1, 'a'), task('t2', 2, 'b', 'failed', 'shutdown'), task('t3', 2, 'a')] } });
  assert.deepEqual(failed.map((c) => 'reason' in c && c.reason), ['task-failed']);
});

test('a replacement on the same node, a task still starting, or a new slot is not a move', () => {
  const nodes = [node('a', '198.18.1.1'), node('b', '198.18.1.2')];
  const before = { nodes, tasks: { web: [task('t1', 1, 'a')] } };
  assert.deepEqual(swarmChanges(before, { nodes, tasks: { web: [task('t1', 1, 'a', 'failed', 'shutdown'), task('t2', 1, 'a')] } }), []);
  assert.deepEqual(swarmChanges(before, { nodes, tasks: { web: [task('t2', 1, 'b', 'starting')] } }), []);
  assert.deepEqual(swarmChanges(before, { nodes, tasks: { web: [task('t1', 1, 'a'), task('t2', 2, 'b')] } }), []);
});

test('a move seen over several looks (running, pending, running elsewhere) is found against the last task seen running in the slot', () => {
  const nodes = [node('a', '198.18.1.1'), node('b', '198.18.1.2')];
  const down = [node('a', '198.18.1.1'), node('b', '198.18.1.2', 'down')];
  const first = { nodes, tasks: { web: [task('t1', 1, 'b')] } };
  const middle = { nodes: down, tasks: { web: [task('t1', 1, 'b', 'orphaned', 'shutdown'), task('t2', 1, 'a', 'pending')] } };
  const end = { nodes: down, tasks: { web: [task('t1', 1, 'b', 'orphaned', 'shutdown'), task('t2', 1, 'a')] } };
  const known1 = lastRunning({}, first);
  assert.deepEqual(swarmChanges({ nodes, tasks: known1 }, middle).map((c) => c.type), ['node.down']);
  const known2 = lastRunning(known1, middle);
  assert.deepEqual(known2.web?.map((k) => k.id), ['t1'], 'the slot still remembers its last running task');
  const moved = swarmChanges({ nodes: down, tasks: known2 }, end);
  assert.deepEqual(moved.map((c) => c.type === 'instance.moved' && [c.from, c.to, c.reason]), [['198.18.1.2', '198.18.1.1', 'node-down']]);
  assert.deepEqual(lastRunning(known2, end).web?.map((k) => k.id), ['t2']);
});
