// crashBackoff(): after 3 exits of a process within 60 s, starts wait 2, 4, 8 … up to 60 s.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance, InstanceObserved } from '../../../db/schema/index.js';
import { crashBackoff, crashLoopMessage, withExitsSeenNow, type Backoff } from '../../../api/scheduler/crash-backoff.js';
import type { ContainerInfo } from '../../../api/runtime/runtime.js';

const now = new Date('2024-05-01T12:00:00Z');
const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000);

let seq = 0;
/** An instance row with the fields crashBackoff reads (the rest of the row does not matter to it). */
function row(process: string, observedState: InstanceObserved, stoppedSecondsAgo: number | null): Instance {
  seq++;
  const fields: Partial<Instance> = {
    id: `echo-${process}-${seq}`,
    appId: 'app_1',
    releaseId: 'rel_1',
    process,
    desiredState: 'running',
    observedState,
    lastExitCode: 1,
    createdAt: ago(300),
    startedAt: ago(300),
    stoppedAt: stoppedSecondsAgo === null ? null : ago(stoppedSecondsAgo),
  };
  return fields as Instance;
}

const exits = (process: string, ...secondsAgo: number[]) => secondsAgo.map((s) => row(process, 'exited', s));
const after = (secondsAgo: number, delaySeconds: number) => new Date(ago(secondsAgo).getTime() + delaySeconds * 1000);

const cases: { name: string; rows: Instance[]; want: Record<string, Omit<Backoff, 'lastExit'>> }[] = [
  { name: 'no rows, no backoff', rows: [], want: {} },
  { name: 'two exits are free', rows: exits('web', 1, 2), want: {} },
  { name: 'the third exit waits 2 s after the last', rows: exits('web', 30, 20, 10), want: { web: { until: after(10, 2), exits: 3 } } },
  { name: 'the fourth waits 4 s', rows: exits('web', 4, 3, 2, 1), want: { web: { until: after(1, 4), exits: 4 } } },
  { name: 'the fifth waits 8 s', rows: exits('web', 5, 4, 3, 2, 1), want: { web: { until: after(1, 8), exits: 5 } } },
  { name: 'the wait stops growing at 60 s', rows: exits('web', 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), want: { web: { until: after(1, 60), exits: 10 } } },
  { name: 'exits older than 60 s do not count', rows: exits('web', 61, 90, 30, 20), want: {} },
  { name: 'an exit exactly 60 s ago still counts', rows: exits('web', 60, 30, 20), want: { web: { until: after(20, 2), exits: 3 } } },
  { name: 'failed starts count as exits', rows: [row('web', 'failed', 3), row('web', 'failed', 2), row('web', 'exited', 1)], want: { web: { until: after(1, 2), exits: 3 } } },
  {
    name: 'deliberate stops and live instances do not count',
    rows: [...exits('web', 3, 2), row('web', 'stopped', 1), row('web', 'running', null), row('web', 'starting', null)],
    want: {},
  },
  { name: 'an exit without a stop time does not count', rows: [...exits('web', 3, 2), row('web', 'exited', null)], want: {} },
  {
    name: 'each process has its own backoff',
    rows: [...exits('web', 3, 2, 1), ...exits('worker', 2, 1), ...exits('cron', 9, 8, 7, 6)],
    want: { web: { until: after(1, 2), exits: 3 }, cron: { until: after(6, 4), exits: 4 } },
  },
];

for (const c of cases) {
  test(`crashBackoff: ${c.name}`, () => {
    const got = Object.fromEntries(Object.entries(crashBackoff(c.rows, now)).map(([p, b]) => [p, { until: b.until, exits: b.exits }]));
    assert.deepEqual(got, c.want);
  });
}

const messages: { until: Date; want: string }[] = [
  { until: after(0, 8), want: 'crash loop: process web exited 5 times in 60 s; next start in 8 s' },
  { until: new Date(now.getTime() + 1_600), want: 'crash loop: process web exited 5 times in 60 s; next start in 2 s' },
  { until: ago(5), want: 'crash loop: process web exited 5 times in 60 s; next start in 0 s' },
];

for (const m of messages) {
  test(`crashLoopMessage says "${m.want}"`, () => {
    assert.equal(crashLoopMessage('web', 5, m.until, now), m.want);
  });
}

test('withExitsSeenNow: a container that stopped counts as an exit at its finish time before the pass records it; a start in progress does not', () => {
  const finished = ago(1);
  const dying = { ...row('web', 'running', null), containerId: 'c1' };
  const vanished = { ...row('web', 'running', null), containerId: 'c2' };
  const pending = { ...row('web', 'starting', null), containerId: null };
  const alive = { ...row('web', 'running', null), containerId: 'c3' };
  const containers = new Map([
    [dying.id, { state: 'exited', finishedAt: finished } as ContainerInfo],
    [alive.id, { state: 'running', finishedAt: null } as ContainerInfo],
  ]);
  const recorded = exits('web', 5).map((r) => ({ ...r, desiredState: 'stopped' as const, containerId: 'c0' }));
  const seen = withExitsSeenNow([...recorded, dying, vanished, pending, alive], containers, now);
  assert.deepEqual(
    seen.filter((r) => r.observedState === 'exited').map((r) => r.stoppedAt?.getTime()),
    [ago(5).getTime(), finished.getTime(), now.getTime()],
  );
  assert.deepEqual(crashBackoff(seen, now).web?.until, after(0, 2), 'three exits: the third (now) is held back 2 s');
});
