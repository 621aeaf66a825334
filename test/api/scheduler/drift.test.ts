// findDrift(): which apps the resync enqueues, table-driven. An app whose instances run as wanted
// is left alone; any difference between desired and actual state names the app with a reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findDrift, type DriftApp, type DriftContainer, type DriftInput, type DriftRow } from '../../../api/scheduler/drift.js';

const app = (more: Partial<DriftApp> = {}): DriftApp => ({ id: 'a1', currentReleaseId: 'r2', scale: {}, processes: { web: { count: 2 } }, ...more });
const row = (id: string, more: Partial<DriftRow> = {}): DriftRow => ({ id, appId: 'a1', releaseId: 'r2', process: 'web', desiredState: 'running', observedState: 'running', containerId: `c-${id}`, address: '198.19.0.9', ...more });
const container = (instanceId: string, more: Partial<DriftContainer> = {}): DriftContainer => ({ id: `c-${instanceId}`, state: 'running', appId: 'a1', instanceId, ...more });

function input(more: Partial<DriftInput>): DriftInput {
  return { apps: [app()], rows: [row('i1'), row('i2')], containers: [container('i1'), container('i2')], rolling: new Set(), keepStopped: 10, ...more };
}

const cases: { name: string; input: DriftInput; drift: [string, string][] }[] = [
  { name: 'an app that runs as wanted is left alone', input: input({}), drift: [] },
  { name: 'a running rollout', input: input({ rolling: new Set(['a1']) }), drift: [['a1', 'a rollout is running']] },
  { name: 'a container that exited', input: input({ containers: [container('i1'), container('i2', { state: 'exited' })] }), drift: [['a1', 'an instance exited']] },
  { name: 'a container that vanished (or was never made)', input: input({ containers: [container('i1')] }), drift: [['a1', 'an instance has no container']] },
  { name: 'a row not yet bound to its container', input: input({ rows: [row('i1'), row('i2', { containerId: null })] }), drift: [['a1', 'an instance is not recorded as it runs']] },
  { name: 'a row still "starting" whose container runs', input: input({ rows: [row('i1'), row('i2', { observedState: 'starting' })] }), drift: [['a1', 'an instance is not recorded as it runs']] },
  { name: 'fewer instances than the count', input: input({ rows: [row('i1')], containers: [container('i1')] }), drift: [['a1', 'process web runs a different count']] },
  { name: 'a scale that changed the count', input: input({ apps: [app({ scale: { web: 3 } })] }), drift: [['a1', 'process web runs a different count']] },
  {
    name: 'a running instance without an address on the network (started before Pier had one)',
    input: input({ rows: [row('i1'), row('i2', { address: null })] }),
    drift: [['a1', 'an instance has no address on the network']],
  },
  {
    name: 'a deleted app that still has containers',
    input: input({ apps: [app({ currentReleaseId: null, processes: null, deletedAt: new Date() })], rows: [], containers: [container('i1', { state: 'exited' })] }),
    drift: [['a1', 'a deleted app still has containers']],
  },
  { name: 'an instance of an older release', input: input({ rows: [row('i1'), row('i2', { releaseId: 'r1' })] }), drift: [['a1', 'an instance of another release runs']] },
  {
    name: 'an instance to stop whose container still runs',
    input: input({ rows: [row('i1'), row('i2'), row('i3', { desiredState: 'stopped' })], containers: [container('i1'), container('i2'), container('i3')] }),
    drift: [['a1', 'an instance is to stop']],
  },
  {
    name: 'a container that no active instance explains',
    input: input({ containers: [container('i1'), container('i2'), container('zz')] }),
    drift: [['a1', 'a container runs that no instance should']],
  },
  {
    name: 'more stopped containers than an app keeps',
    input: input({ keepStopped: 1, containers: [container('i1'), container('i2'), container('old1', { state: 'exited' }), container('old2', { state: 'exited' })] }),
    drift: [['a1', 'stopped containers to collect']],
  },
  { name: 'an app without a release and without instances is left alone', input: input({ apps: [app({ currentReleaseId: null, processes: null })], rows: [], containers: [] }), drift: [] },
  {
    name: "containers of an app this database does not know are never touched",
    input: input({ containers: [container('i1'), container('i2'), container('x', { appId: 'elsewhere' })] }),
    drift: [],
  },
];

for (const c of cases) {
  test(`drift: ${c.name}`, () => {
    assert.deepEqual([...findDrift(c.input)], c.drift);
  });
}

test('drift over a thousand apps names only the one that differs', () => {
  const apps: DriftApp[] = [];
  const rows: DriftRow[] = [];
  const containers: DriftContainer[] = [];
  for (let i = 0; i < 1000; i++) {
    apps.push(app({ id: `a${i}` }));
    for (const n of [1, 2]) {
      rows.push(row(`a${i}-${n}`, { appId: `a${i}` }));
      containers.push(container(`a${i}-${n}`, { appId: `a${i}`, state: i === 517 && n === 2 ? 'exited' : 'running' }));
    }
  }
  assert.deepEqual([...findDrift({ apps, rows, containers, rolling: new Set(), keepStopped: 10 })], [['a517', 'an instance exited']]);
});
