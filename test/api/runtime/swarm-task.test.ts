// How a task's published ports are read from Swarm (pure): Engine 20.10 publishes a dynamic port
// once per address family and the two can differ; Swarm's PortStatus lists both with no host
// address, IPv4 first. The swarm e2e met a manager task at 0.0.0.0:32775 and [::]:32774, and
// Pier, keeping the last, checked 32774 on the node's IPv4 address: ECONNREFUSED until the
// rollout's deadline.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { taskPortsAt, toTask } from '../../../api/runtime/swarm-services.js';

const raw = (ports: { TargetPort: number; PublishedPort: number }[]) => ({
  ID: 'task1',
  ServiceID: 'svc1',
  Slot: 1,
  NodeID: 'node1',
  DesiredState: 'running',
  Status: { State: 'running', ContainerStatus: { ContainerID: 'c1' }, PortStatus: { Ports: ports } },
});

test('a target published on both families with different ports: the IPv4 one for an IPv4 node address, the IPv6 one for an IPv6 address', () => {
  // The order Swarm reported in the failing run (docker service ps: *:32775->8080, *:32774->8080).
  const task = toTask(raw([{ TargetPort: 8080, PublishedPort: 32775 }, { TargetPort: 8080, PublishedPort: 32774 }, { TargetPort: 9000, PublishedPort: 32776 }]));
  assert.deepEqual(task.ports, { 8080: 32775, 9000: 32776 });
  assert.deepEqual(task.published, { 8080: [32775, 32774], 9000: [32776] });
  assert.deepEqual(taskPortsAt(task, '198.18.49.1'), { 8080: 32775, 9000: 32776 });
  assert.deepEqual(taskPortsAt(task, 'fd00::1'), { 8080: 32774, 9000: 32776 });
});

test('the same port on both families, or one family only: that port', () => {
  assert.deepEqual(taskPortsAt(toTask(raw([{ TargetPort: 8080, PublishedPort: 32771 }, { TargetPort: 8080, PublishedPort: 32771 }])), '198.18.49.2'), { 8080: 32771 });
  assert.deepEqual(taskPortsAt(toTask(raw([{ TargetPort: 8080, PublishedPort: 32771 }])), 'fd00::2'), { 8080: 32771 });
  assert.deepEqual(taskPortsAt(toTask(raw([])), '198.18.49.2'), {});
});
