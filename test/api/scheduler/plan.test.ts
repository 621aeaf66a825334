// plan(): the reconciler's pure core, table-driven from desired and actual state, for each
// deploy strategy (rolling, immediate, bluegreen).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLive, plan, type Action, type ActualInstance, type PlanInput, type Strategy } from '../../../api/scheduler/plan.js';

const now = new Date('2024-05-01T12:00:00Z');
const at = (offsetSeconds: number) => new Date(now.getTime() + offsetSeconds * 1000);

const rolling: Strategy = { type: 'rolling', maxSurge: 1, maxUnavailable: 0 };
const immediate: Strategy = { type: 'immediate', maxSurge: 0, maxUnavailable: 0 };
const bluegreen: Strategy = { type: 'bluegreen', maxSurge: 0, maxUnavailable: 0 };

/** An instance that should run, running and ready unless told otherwise. `age` orders creation. */
function inst(id: string, releaseId: string, process: string, more: Partial<ActualInstance> & { age?: number } = {}): ActualInstance {
  const { age = 0, ...rest } = more;
  const container = rest.container === undefined ? 'running' : rest.container;
  return { id, releaseId, process, desired: 'running', container, ready: container === 'running', drainUntil: null, createdAt: at(-1000 + age), ...rest };
}

/** An instance told to stop (drained), whose container may still run. */
const leaving = (id: string, more: Partial<ActualInstance> = {}) => inst(id, 'r1', 'web', { desired: 'stopped', ready: false, ...more });

function input(more: Partial<PlanInput>): PlanInput {
  return { releaseId: 'r2', processes: [{ process: 'web', count: 1 }], strategy: rolling, instances: [], orphans: [], backoffUntil: {}, now, ...more };
}

const start = (process: string, releaseId = 'r2'): Action => ({ type: 'start', releaseId, process });
const drain = (instanceId: string, reason: string): Action => ({ type: 'drain', instanceId, reason });
const stop = (instanceId: string): Action => ({ type: 'stop', instanceId });
const exited = (instanceId: string): Action => ({ type: 'exited', instanceId });
const replaced = (instanceId: string) => drain(instanceId, 'replaced by a newer release');

const web = (count: number) => [{ process: 'web', count }];

const cases: { name: string; input: PlanInput; actions: Action[]; retryAt?: Date }[] = [
  // Counts within one release.
  {
    name: 'starts every missing instance of a fresh release',
    input: input({ processes: [{ process: 'web', count: 2 }, { process: 'worker', count: 1 }] }),
    actions: [start('web'), start('web'), start('worker')],
  },
  {
    name: 'starts only the instances still missing',
    input: input({ processes: web(3), instances: [inst('a', 'r2', 'web')] }),
    actions: [start('web'), start('web')],
  },
  {
    name: 'does nothing when the release runs in full',
    input: input({ processes: web(2), instances: [inst('a', 'r2', 'web'), inst('b', 'r2', 'web')] }),
    actions: [],
  },
  {
    name: 'does not start more while a new instance is not ready yet',
    input: input({ instances: [inst('a', 'r2', 'web', { container: 'created' })] }),
    actions: [],
  },
  {
    name: 'drains the newest extras when scaled down, keeping the oldest',
    input: input({ instances: [inst('new', 'r2', 'web', { age: 30 }), inst('old', 'r2', 'web', { age: 10 }), inst('mid', 'r2', 'web', { age: 20 })] }),
    actions: [drain('mid', 'scaled down'), drain('new', 'scaled down')],
  },
  {
    name: 'keeps a ready instance over an older one that is not ready when scaled down',
    input: input({ instances: [inst('older', 'r2', 'web', { age: 1, ready: false }), inst('newer', 'r2', 'web', { age: 2 })] }),
    actions: [drain('older', 'scaled down')],
  },
  {
    name: 'drains every instance of a process scaled to zero',
    input: input({ processes: web(0), instances: [inst('a', 'r2', 'web')] }),
    actions: [drain('a', 'scaled down')],
  },
  // Containers that stopped.
  {
    name: 'marks an instance whose container exited and starts a replacement',
    input: input({ instances: [inst('a', 'r2', 'web', { container: 'exited' })] }),
    actions: [exited('a'), start('web')],
  },
  {
    name: 'marks an instance whose container is dead and starts a replacement',
    input: input({ instances: [inst('a', 'r2', 'web', { container: 'dead' })] }),
    actions: [exited('a'), start('web')],
  },
  {
    name: 'marks an instance whose container vanished and starts a replacement',
    input: input({ instances: [inst('a', 'r2', 'web', { container: null })] }),
    actions: [exited('a'), start('web')],
  },
  // A start cut between its row and its container: the container is made, not a second instance.
  {
    name: 'creates the container of an instance row that never got one, and counts it',
    input: input({ processes: web(2), instances: [inst('a', 'r2', 'web', { container: null, pending: true, ready: false }), inst('b', 'r2', 'web')] }),
    actions: [{ type: 'create', instanceId: 'a' }],
  },
  {
    name: 'creates a pending instance of an older release too; the rollout then replaces it as usual',
    input: input({ instances: [inst('old', 'r1', 'web', { container: null, pending: true, ready: false })] }),
    actions: [{ type: 'create', instanceId: 'old' }, start('web')],
  },
  {
    name: 'records an old instance that exited without restarting it',
    input: input({ instances: [inst('old', 'r1', 'web', { container: 'exited' }), inst('new', 'r2', 'web')] }),
    actions: [exited('old')],
  },
  // Rolling: old instances serve until new ones are ready, within surge and unavailability.
  {
    name: 'rolling: starts the new instance while the old one keeps serving',
    input: input({ instances: [inst('old', 'r1', 'web')] }),
    actions: [start('web')],
  },
  {
    name: 'rolling: keeps the old instance while the new one is not ready',
    input: input({ instances: [inst('old', 'r1', 'web'), inst('new', 'r2', 'web', { container: 'created' })] }),
    actions: [],
  },
  {
    name: 'rolling: keeps the old instance while the new one runs but fails its check',
    input: input({ instances: [inst('old', 'r1', 'web'), inst('new', 'r2', 'web', { ready: false })] }),
    actions: [],
  },
  {
    name: 'rolling: drains the old instance once the new one is ready',
    input: input({ instances: [inst('old', 'r1', 'web'), inst('new', 'r2', 'web')] }),
    actions: [replaced('old')],
  },
  {
    name: 'rolling: starts no more than the surge allows',
    input: input({ processes: web(2), instances: [inst('o1', 'r1', 'web'), inst('o2', 'r1', 'web')] }),
    actions: [start('web')],
  },
  {
    name: 'rolling: drains one old instance, the one not ready first, per new ready one',
    input: input({ processes: web(2), instances: [inst('o1', 'r1', 'web', { age: 1 }), inst('o2', 'r1', 'web', { age: 2, ready: false }), inst('n1', 'r2', 'web')] }),
    actions: [replaced('o2')],
  },
  {
    name: 'rolling: starts the next new instance once an old one has left',
    input: input({ processes: web(2), instances: [leaving('o1', { drainUntil: at(5) }), inst('o2', 'r1', 'web'), inst('n1', 'r2', 'web')] }),
    actions: [start('web')],
    retryAt: at(5),
  },
  {
    name: 'rolling without surge: takes an old instance out first when unavailability is allowed',
    input: input({ processes: web(2), strategy: { type: 'rolling', maxSurge: 0, maxUnavailable: 1 }, instances: [inst('o1', 'r1', 'web', { age: 1 }), inst('o2', 'r1', 'web', { age: 2 })] }),
    actions: [replaced('o1')],
  },
  {
    name: 'rolling: keeps old instances of a process removed from the release until the release runs in full',
    input: input({ instances: [inst('o-web', 'r1', 'web'), inst('o-cron', 'r1', 'cron'), inst('n-web', 'r2', 'web', { container: 'created' })] }),
    actions: [],
  },
  {
    name: 'rolling: drains old instances of every process once the release runs in full',
    input: input({ instances: [inst('o-web', 'r1', 'web'), inst('o-cron', 'r1', 'cron'), inst('n-web', 'r2', 'web')] }),
    actions: [replaced('o-web'), replaced('o-cron')],
  },
  // Immediate and blue/green.
  {
    name: 'immediate: drains the old release at once and starts the new one',
    input: input({ processes: web(2), strategy: immediate, instances: [inst('o1', 'r1', 'web'), inst('o2', 'r1', 'web'), inst('o-cron', 'r1', 'cron')] }),
    actions: [start('web'), start('web'), replaced('o1'), replaced('o2'), replaced('o-cron')],
  },
  {
    name: 'bluegreen: starts the whole new release beside the old one',
    input: input({ processes: web(2), strategy: bluegreen, instances: [inst('o1', 'r1', 'web'), inst('o2', 'r1', 'web')] }),
    actions: [start('web'), start('web')],
  },
  {
    name: 'bluegreen: keeps every old instance while one process of the new release is not ready',
    input: input({
      processes: [{ process: 'web', count: 1 }, { process: 'worker', count: 1 }],
      strategy: bluegreen,
      instances: [inst('o-web', 'r1', 'web'), inst('o-worker', 'r1', 'worker'), inst('n-web', 'r2', 'web'), inst('n-worker', 'r2', 'worker', { ready: false })],
    }),
    actions: [],
  },
  {
    name: 'bluegreen: drains every old instance once the new release is ready',
    input: input({
      processes: [{ process: 'web', count: 1 }, { process: 'worker', count: 1 }],
      strategy: bluegreen,
      instances: [inst('o-web', 'r1', 'web'), inst('o-worker', 'r1', 'worker'), inst('n-web', 'r2', 'web'), inst('n-worker', 'r2', 'worker')],
    }),
    actions: [replaced('o-web'), replaced('o-worker')],
  },
  // Processes removed, instances leaving.
  {
    name: 'drains an instance of a process removed from the release',
    input: input({ instances: [inst('w', 'r2', 'web'), inst('gone', 'r2', 'cron')] }),
    actions: [drain('gone', 'process removed from the release')],
  },
  {
    name: 'stops a leaving instance without a drain time',
    input: input({ instances: [inst('w', 'r2', 'web'), leaving('s')] }),
    actions: [stop('s')],
  },
  {
    name: 'stops a leaving instance whose drain time has passed',
    input: input({ instances: [inst('w', 'r2', 'web'), leaving('s', { drainUntil: at(-1) }), leaving('t', { drainUntil: now })] }),
    actions: [stop('s'), stop('t')],
  },
  {
    name: 'waits for the drain time of a leaving instance, and looks again at the earliest',
    input: input({ instances: [inst('w', 'r2', 'web'), leaving('s', { drainUntil: at(9) }), leaving('t', { drainUntil: at(3) })] }),
    actions: [],
    retryAt: at(3),
  },
  {
    name: 'leaves alone a leaving instance whose container is gone or exited',
    input: input({ instances: [inst('w', 'r2', 'web'), leaving('s1', { container: 'exited', drainUntil: at(9) }), leaving('s2', { container: null })] }),
    actions: [],
  },
  // Waiting for the edges to serve the new release's endpoints (holdPrevious).
  {
    name: 'holding the previous release: keeps the old instance though the new one is ready',
    input: input({ holdPrevious: true, instances: [inst('old', 'r1', 'web'), inst('new', 'r2', 'web')] }),
    actions: [],
  },
  {
    name: 'holding the previous release: still starts the new instances, and scales down extras of the new release',
    input: input({ holdPrevious: true, processes: web(1), strategy: immediate, instances: [inst('o1', 'r1', 'web'), inst('n1', 'r2', 'web', { age: 1 }), inst('n2', 'r2', 'web', { age: 2 })] }),
    actions: [drain('n2', 'scaled down')],
  },
  {
    name: 'holding the previous release: immediate and bluegreen keep every old instance',
    input: input({ holdPrevious: true, strategy: bluegreen, processes: [{ process: 'web', count: 1 }], instances: [inst('o-web', 'r1', 'web'), inst('o-cron', 'r1', 'cron'), inst('n', 'r2', 'web')] }),
    actions: [],
  },
  // Crash-loop backoff.
  {
    name: 'holds back starts during a backoff and looks again at its end',
    input: input({ backoffUntil: { web: at(8) } }),
    actions: [],
    retryAt: at(8),
  },
  {
    name: 'looks again at the earliest of several backoffs and drains',
    input: input({
      processes: [{ process: 'web', count: 1 }, { process: 'worker', count: 2 }, { process: 'cron', count: 1 }],
      instances: [leaving('s', { drainUntil: at(6) })],
      backoffUntil: { web: at(30), worker: at(4), cron: at(-1) },
    }),
    actions: [start('cron')],
    retryAt: at(4),
  },
  {
    name: 'starts again once the backoff has passed, and at its exact end',
    input: input({ processes: [{ process: 'web', count: 1 }, { process: 'worker', count: 1 }], backoffUntil: { web: at(-1), worker: now } }),
    actions: [start('web'), start('worker')],
  },
  {
    name: 'ignores a backoff for a process that runs in full',
    input: input({ instances: [inst('a', 'r2', 'web')], backoffUntil: { web: at(10) } }),
    actions: [],
  },
  {
    name: 'keeps the old release serving during a backoff',
    input: input({ instances: [inst('old', 'r1', 'web'), inst('new', 'r2', 'web', { container: 'exited' })], backoffUntil: { web: at(10) } }),
    actions: [exited('new')],
    retryAt: at(10),
  },
  // Orphans, and no release at all.
  {
    name: 'removes orphan containers',
    input: input({ instances: [inst('a', 'r2', 'web')], orphans: ['c1', 'c2'] }),
    actions: [
      { type: 'remove-orphan', containerId: 'c1' },
      { type: 'remove-orphan', containerId: 'c2' },
    ],
  },
  {
    name: 'drains everything when no release should run',
    input: input({ releaseId: null, processes: [], instances: [inst('a', 'r1', 'web'), inst('b', 'r2', 'worker'), inst('c', 'r2', 'web', { container: 'created' })] }),
    actions: [drain('a', 'the app has no release to run'), drain('b', 'the app has no release to run'), drain('c', 'the app has no release to run')],
  },
  {
    name: 'records a vanished container and starts nothing when no release should run',
    input: input({ releaseId: null, processes: [], instances: [inst('a', 'r1', 'web', { container: null })] }),
    actions: [exited('a')],
  },
  // Processes with volumes: one writer per volume, so stop-then-start per slot whatever the strategy.
  {
    name: 'volumes: a rolling deploy stops the old instance before it starts the new one',
    input: input({ stopFirst: new Set(['web']), instances: [inst('old', 'r1', 'web')] }),
    actions: [replaced('old')],
  },
  {
    name: 'volumes: a bluegreen or immediate deploy too',
    input: input({ strategy: immediate, stopFirst: new Set(['web']), instances: [inst('old', 'r1', 'web')] }),
    actions: [replaced('old')],
  },
  {
    name: 'volumes: nothing starts while the leaving container still runs',
    input: input({ stopFirst: new Set(['web']), instances: [leaving('old')] }),
    actions: [stop('old')],
  },
  {
    name: 'volumes: the new instance starts once the old container stopped',
    input: input({ stopFirst: new Set(['web']), instances: [leaving('old', { container: 'exited' })] }),
    actions: [start('web')],
  },
  {
    name: 'volumes: with two slots, the second is freed only once the first new instance is ready',
    input: input({ processes: web(2), stopFirst: new Set(['web']), instances: [inst('new', 'r2', 'web', { container: 'created' }), inst('old', 'r1', 'web')] }),
    actions: [],
  },
  {
    name: 'volumes: nothing of a process starts while its volume is restored in place',
    input: input({ stopFirst: new Set(['web']), held: new Set(['web']), instances: [leaving('old', { container: 'exited' })] }),
    actions: [],
  },
];

for (const c of cases) {
  test(`plan ${c.name}`, () => {
    const result = plan(c.input);
    assert.deepEqual(sorted(result.actions), sorted(c.actions));
    assert.deepEqual(result.retryAt, c.retryAt ?? null);
  });
}

test('plan never drains or stops the same instance twice', () => {
  for (const c of cases) {
    const ids = plan(c.input).actions.flatMap((a) => (a.type === 'drain' || a.type === 'stop' ? [a.instanceId] : []));
    assert.equal(new Set(ids).size, ids.length, c.name);
  }
});

test('plan does not change its input', () => {
  const i = input({ processes: web(1), instances: [inst('b', 'r2', 'web', { age: 2 }), inst('a', 'r2', 'web', { age: 1 }), inst('o', 'r1', 'web')] });
  const before = structuredClone(i);
  plan(i);
  assert.deepEqual(i, before);
});

test('a rolling deploy converges step by step, never below the count of ready instances', () => {
  // Apply each plan as the reconciler would: starts become ready instances, drains leave at once.
  let instances: ActualInstance[] = [inst('o1', 'r1', 'web'), inst('o2', 'r1', 'web'), inst('o3', 'r1', 'web')];
  let n = 0;
  for (let round = 0; round < 20; round++) {
    const { actions } = plan(input({ processes: web(3), instances }));
    if (actions.length === 0) break;
    for (const a of actions) {
      if (a.type === 'start') instances.push(inst(`n${++n}`, a.releaseId, a.process, { age: 100 + n }));
      if (a.type === 'drain') instances = instances.filter((i) => i.id !== a.instanceId);
    }
    assert.ok(instances.filter((i) => i.ready).length >= 3, `round ${round}: at least 3 ready`);
    assert.ok(instances.length <= 4, `round ${round}: at most count + surge`);
  }
  assert.deepEqual(instances.map((i) => i.releaseId), ['r2', 'r2', 'r2']);
});

const liveness: [Parameters<typeof isLive>[0], boolean][] = [
  ['created', true],
  ['running', true],
  ['restarting', true],
  ['paused', true],
  ['removing', false],
  ['exited', false],
  ['dead', false],
  [null, false],
];

for (const [state, want] of liveness) {
  test(`isLive is ${want} for a container that is ${state ?? 'gone'}`, () => {
    assert.equal(isLive(state), want);
  });
}

/** Actions in a stable order, so tests do not depend on the order plan() lists them in. */
function sorted(actions: Action[]): string[] {
  return actions.map((a) => JSON.stringify(a)).sort();
}
