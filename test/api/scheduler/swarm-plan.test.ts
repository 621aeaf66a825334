// The swarm reconciler's pure plan: which services to ensure, which instances leave the edge, and
// when an old service is scaled to zero and removed (docs/several-machines.md, "Who owns what").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planSwarm, releaseReady, type PlanInstance, type PlanService, type SwarmPlanInput } from '../../../api/scheduler/swarm-plan.js';

const now = new Date('2026-01-01T00:00:00Z');
const later = new Date(now.getTime() + 1_000);
const earlier = new Date(now.getTime() - 1_000);
const svc = (releaseId: string, replicas: number, process = 'web', generation = 0): PlanService => ({ name: `pier-a-${releaseId}-${process}${generation ? `-g${generation}` : ''}`, releaseId, process, replicas, generation });
const inst = (id: string, releaseId: string, o: Partial<PlanInstance> = {}): PlanInstance => ({ id, releaseId, process: 'web', desired: 'running', ready: true, drainUntil: null, ...o });
const input = (o: Partial<SwarmPlanInput>): SwarmPlanInput => ({ release: { id: 'r2', counts: [{ process: 'web', count: 2 }] }, services: [], instances: [], keepPrevious: false, now, ...o });

test('swarm plan: each step of a rollout, a scale, a failed rollout and a deleted app', () => {
  const cases: { name: string; input: SwarmPlanInput; actions: unknown[]; retryAt?: Date | null }[] = [
    { name: 'first deploy: the service is made', input: input({}), actions: [{ type: 'ensure', process: 'web', replicas: 2, generation: 0 }] },
    { name: 'steady: nothing to do', input: input({ services: [svc('r2', 2)], instances: [inst('a', 'r2'), inst('b', 'r2')] }), actions: [] },
    { name: 'pier scale up: the replicas of the service rise', input: input({ services: [svc('r2', 1)] }), actions: [{ type: 'ensure', process: 'web', replicas: 2, generation: 0 }] },
    {
      name: 'pier scale down: the smaller count is the next generation; the current one is untouched',
      input: input({ services: [svc('r2', 3)], instances: ['a', 'b', 'c'].map((id) => inst(id, 'r2', { service: 'pier-a-r2-web' })) }),
      actions: [{ type: 'ensure', process: 'web', replicas: 2, generation: 1 }],
    },
    {
      name: 'scale down under way: the older generation serves until the new one is ready',
      input: input({ services: [svc('r2', 3), svc('r2', 2, 'web', 1)], instances: [...['a', 'b', 'c'].map((id) => inst(id, 'r2', { service: 'pier-a-r2-web' })), inst('n1', 'r2', { service: 'pier-a-r2-web-g1' }), inst('n2', 'r2', { service: 'pier-a-r2-web-g1', ready: false })] }),
      actions: [],
    },
    {
      name: 'scale down ready: exactly the older generation\'s instances leave the edge',
      input: input({ services: [svc('r2', 3), svc('r2', 2, 'web', 1)], instances: [...['a', 'b', 'c'].map((id) => inst(id, 'r2', { service: 'pier-a-r2-web' })), inst('n1', 'r2', { service: 'pier-a-r2-web-g1' }), inst('n2', 'r2', { service: 'pier-a-r2-web-g1' })] }),
      actions: ['a', 'b', 'c'].map((id) => ({ type: 'drain', instanceId: id, reason: 'scaled down' })),
    },
    {
      name: 'scale down drained: the older generation is removed',
      input: input({ services: [svc('r2', 3), svc('r2', 2, 'web', 1)], instances: [...['a', 'b', 'c'].map((id) => inst(id, 'r2', { service: 'pier-a-r2-web', desired: 'stopped', drainUntil: earlier })), inst('n1', 'r2', { service: 'pier-a-r2-web-g1' }), inst('n2', 'r2', { service: 'pier-a-r2-web-g1' })] }),
      actions: [{ type: 'remove', service: 'pier-a-r2-web' }],
    },
    {
      name: 'scaled down again before the new generation was ready: a third one; both older ones go once it is',
      input: input({ release: { id: 'r2', counts: [{ process: 'web', count: 1 }] }, services: [svc('r2', 3), svc('r2', 2, 'web', 1)], instances: [inst('a', 'r2', { service: 'pier-a-r2-web' })] }),
      actions: [{ type: 'ensure', process: 'web', replicas: 1, generation: 2 }],
    },
    {
      name: 'rollout under way: the old service is kept untouched',
      input: input({ services: [svc('r1', 2), svc('r2', 2)], instances: [inst('o1', 'r1'), inst('o2', 'r1'), inst('n1', 'r2', { ready: false })], keepPrevious: true }),
      actions: [],
    },
    {
      name: 'new release ready: the old instances leave the edge',
      input: input({ services: [svc('r1', 2), svc('r2', 2)], instances: [inst('o1', 'r1'), inst('o2', 'r1'), inst('n1', 'r2'), inst('n2', 'r2')] }),
      actions: [
        { type: 'drain', instanceId: 'o1', reason: 'replaced by a newer release' },
        { type: 'drain', instanceId: 'o2', reason: 'replaced by a newer release' },
      ],
    },
    {
      name: 'draining: wait for the drain to end',
      input: input({ services: [svc('r1', 2), svc('r2', 2)], instances: [inst('o1', 'r1', { desired: 'stopped', drainUntil: later }), inst('n1', 'r2'), inst('n2', 'r2')] }),
      actions: [],
      retryAt: later,
    },
    {
      name: 'drained: the old service is scaled to zero and removed',
      input: input({ services: [svc('r1', 2), svc('r2', 2)], instances: [inst('o1', 'r1', { desired: 'stopped', drainUntil: earlier }), inst('n1', 'r2'), inst('n2', 'r2')] }),
      actions: [{ type: 'remove', service: 'pier-a-r1-web' }],
    },
    {
      name: 'failed rollout (back to r1): the new service goes, r1 kept',
      input: input({ release: { id: 'r1', counts: [{ process: 'web', count: 2 }] }, services: [svc('r1', 2), svc('r2', 2)], instances: [inst('o1', 'r1'), inst('o2', 'r1'), inst('n1', 'r2', { ready: false })] }),
      actions: [{ type: 'drain', instanceId: 'n1', reason: 'replaced by a newer release' }],
    },
    {
      name: 'a service with no instance row yet is removed at once',
      input: input({ services: [svc('r1', 2), svc('r2', 2)], instances: [inst('n1', 'r2'), inst('n2', 'r2')] }),
      actions: [{ type: 'remove', service: 'pier-a-r1-web' }],
    },
    {
      name: 'a process removed from the release',
      input: input({ services: [svc('r2', 2), svc('r2', 1, 'worker')], instances: [inst('w1', 'r2', { process: 'worker' })] }),
      actions: [{ type: 'drain', instanceId: 'w1', reason: 'process removed from the release' }],
    },
    {
      name: 'no release (app deleted): everything drains, then goes',
      input: input({ release: null, services: [svc('r2', 2)], instances: [inst('a', 'r2'), inst('b', 'r2', { desired: 'stopped', drainUntil: earlier })] }),
      actions: [{ type: 'drain', instanceId: 'a', reason: 'the app has no release to run' }],
    },
  ];
  for (const c of cases) {
    const plan = planSwarm(c.input);
    assert.deepEqual(plan.actions, c.actions, c.name);
    if (c.retryAt !== undefined) assert.deepEqual(plan.retryAt, c.retryAt, c.name);
  }
});

test('swarm plan: a release is ready when each process has its count of ready instances', () => {
  const counts = [{ process: 'web', count: 2 }];
  assert.equal(releaseReady('r2', counts, [inst('a', 'r2'), inst('b', 'r2')]), true);
  assert.equal(releaseReady('r2', counts, [inst('a', 'r2'), inst('b', 'r2', { ready: false })]), false);
  assert.equal(releaseReady('r2', counts, [inst('a', 'r2'), inst('b', 'r1')]), false);
  assert.equal(releaseReady('r2', counts, [inst('a', 'r2'), inst('b', 'r2', { desired: 'stopped' })]), false);
});

test('swarm plan: a process with volumes stops its old service before its new one starts, even while the rest of a rollout keeps the previous release', () => {
  const oneWriter = new Set(['db']);
  const counts = [{ process: 'web', count: 1 }, { process: 'db', count: 1 }];
  const db = (id: string, releaseId: string, o: Partial<PlanInstance> = {}) => inst(id, releaseId, { process: 'db', ...o });
  const cases: { name: string; input: SwarmPlanInput; actions: unknown[] }[] = [
    { name: 'first deploy: both are made', input: input({ oneWriter, release: { id: 'r2', counts } }), actions: [{ type: 'ensure', process: 'web', replicas: 1, generation: 0 }, { type: 'ensure', process: 'db', replicas: 1, generation: 0 }] },
    {
      name: 'a new release: web starts beside the old one; db\'s old writer drains first and its new service waits',
      input: input({ oneWriter, release: { id: 'r2', counts }, keepPrevious: true, services: [svc('r1', 1), svc('r1', 1, 'db')], instances: [inst('w1', 'r1'), db('d1', 'r1')] }),
      actions: [{ type: 'ensure', process: 'web', replicas: 1, generation: 0 }, { type: 'drain', instanceId: 'd1', reason: 'replaced by a newer release' }],
    },
    {
      name: 'the old writer drained: its service is removed; still no new one',
      input: input({ oneWriter, release: { id: 'r2', counts }, keepPrevious: true, services: [svc('r1', 1), svc('r1', 1, 'db'), svc('r2', 1)], instances: [inst('w1', 'r1'), db('d1', 'r1', { desired: 'stopped', drainUntil: earlier })] }),
      actions: [{ type: 'remove', service: 'pier-a-r1-db' }],
    },
    {
      name: 'the old service gone: the new writer starts',
      input: input({ oneWriter, release: { id: 'r2', counts }, keepPrevious: true, services: [svc('r1', 1), svc('r2', 1)], instances: [inst('w1', 'r1'), inst('w2', 'r2')] }),
      actions: [{ type: 'ensure', process: 'db', replicas: 1, generation: 0 }],
    },
    {
      name: 'held at zero (its volume is restored): a zero generation, and the writer drains',
      input: input({ oneWriter, release: { id: 'r2', counts: [{ process: 'db', count: 0 }] }, services: [svc('r2', 1, 'db')], instances: [db('d2', 'r2', { service: 'pier-a-r2-db' })] }),
      actions: [{ type: 'ensure', process: 'db', replicas: 0, generation: 1 }],
    },
    {
      name: 'back to one while the held writer\'s service is still there: nothing starts yet',
      input: input({ oneWriter, release: { id: 'r2', counts: [{ process: 'db', count: 1 }] }, services: [svc('r2', 1, 'db'), svc('r2', 0, 'db', 1)], instances: [db('d2', 'r2', { service: 'pier-a-r2-db', desired: 'stopped', drainUntil: later })] }),
      actions: [],
    },
  ];
  for (const c of cases) assert.deepEqual(planSwarm(c.input).actions, c.actions, c.name);
});
