// The soak's verdict is only as good as its end checks: on a consistent snapshot they all pass,
// and each kind of disagreement the soak exists to find fails the check that names it. Also the
// attribution of failures to fault windows, and the seeded schedule being reproducible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { windowOf } from '../../bench/soak-report.js';
import { createRandom } from '../../bench/soak-random.js';
import { checkState, idHoles, type StateSnapshot } from '../../bench/soak-state-check.js';
import type { FaultRecord } from '../../bench/soak-tally.js';

/** One app, web: v1 then v2 (current), one instance of each; v1's stopped, v2's running. */
function consistent(): StateSnapshot {
  const events: StateSnapshot['events'] = [
    { id: 1, appId: 'app_w', type: 'deploy.started', deploymentId: 'dep_1', instanceId: null },
    { id: 2, appId: 'app_w', type: 'instance.started', deploymentId: null, instanceId: 'web-echo-a' },
    { id: 3, appId: 'app_w', type: 'instance.healthy', deploymentId: null, instanceId: 'web-echo-a' },
    { id: 4, appId: 'app_w', type: 'deploy.succeeded', deploymentId: 'dep_1', instanceId: null },
    { id: 5, appId: 'app_w', type: 'deploy.started', deploymentId: 'dep_2', instanceId: null },
    { id: 6, appId: 'app_w', type: 'instance.started', deploymentId: null, instanceId: 'web-echo-b' },
    { id: 7, appId: 'app_w', type: 'instance.healthy', deploymentId: null, instanceId: 'web-echo-b' },
    { id: 8, appId: 'app_w', type: 'instance.stopped', deploymentId: null, instanceId: 'web-echo-a' },
    { id: 9, appId: 'app_w', type: 'deploy.succeeded', deploymentId: 'dep_2', instanceId: null },
    { id: 10, appId: 'app_w', type: 'app.scaled', deploymentId: null, instanceId: null },
    { id: 12, appId: 'app_w', type: 'instance.exec', deploymentId: null, instanceId: 'web-echo-b' },
  ];
  const ids = events.map((e) => e.id);
  return {
    apps: [{ id: 'app_w', name: 'web', currentReleaseId: 'rel_2' }],
    releases: [
      { id: 'rel_1', appId: 'app_w', version: 1 },
      { id: 'rel_2', appId: 'app_w', version: 2 },
    ],
    deployments: [
      { id: 'dep_1', appId: 'app_w', releaseId: 'rel_1', state: 'succeeded' },
      { id: 'dep_2', appId: 'app_w', releaseId: 'rel_2', state: 'succeeded' },
    ],
    events,
    instances: [
      { id: 'web-echo-a', appId: 'app_w', releaseId: 'rel_1', process: 'echo', desired: 'stopped', observed: 'stopped', health: 'healthy', started: true },
      { id: 'web-echo-b', appId: 'app_w', releaseId: 'rel_2', process: 'echo', desired: 'running', observed: 'running', health: 'healthy', started: true },
    ],
    apiReleases: new Map([['web', [2, 1]]]),
    apiEvents: new Map([['web', ids]]),
    apiRunning: new Map([['web', ['web-echo-b']]]),
    desired: new Map([['web', { echo: 1 }]]),
    followed: new Map([['web', ids]]),
    containers: [
      { id: 'c1', name: 'web-echo-a', running: false, labels: { 'dev.pier.managed': 'true', 'dev.pier.instance': 'web-echo-a' } },
      { id: 'c2', name: 'web-echo-b', running: true, labels: { 'dev.pier.managed': 'true', 'dev.pier.instance': 'web-echo-b' } },
    ],
    seen: { deployments: new Map([['dep_2', { app: 'web', version: 2 }]]), scaled: new Map([['web', 1]]), execs: new Map([['web', 1]]) },
    databaseRestarts: 1,
  };
}

/** The checks that failed, by the start of their name. */
function failed(s: StateSnapshot): string[] {
  return checkState(s)
    .filter((c) => !c.ok)
    .map((c) => c.name.split(':')[0] as string);
}

test('a consistent snapshot passes every check, and the id hole is only reported', () => {
  const results = checkState(consistent());
  assert.deepEqual(results.filter((r) => !r.ok), []);
  assert.match(results.find((r) => r.info)?.detail ?? '', /^1 holes \(1 ids\) over 1 database restarts/);
});

test('each disagreement fails the check that names it', () => {
  const cases: [string, (s: StateSnapshot) => void, string][] = [
    ['a release version skipped', (s) => (s.releases[1]!.version = 3), 'releases'],
    ['a release the API does not list', (s) => s.apiReleases.set('web', [2]), 'releases'],
    ['an answered deployment lost', (s) => s.seen.deployments.set('dep_9', { app: 'web', version: 3 }), 'deployments the API answered with are all there'],
    ['a deployment still running', (s) => (s.deployments[1]!.state = 'running'), 'every deployment ended (succeeded, failed, superseded or cancelled)'],
    ['a superseded deployment without its event', (s) => (s.deployments[0]!.state = 'superseded'), 'every deployment has its start event and its final event'],
    ['a stopped instance without instance.stopped', (s) => s.events.splice(7, 1), 'every instance state and health change has its event'],
    ['health without its last event', (s) => (s.instances[1]!.health = 'unhealthy'), 'every instance state and health change has its event'],
    ['a scale answered without app.scaled', (s) => s.seen.scaled.set('web', 2), 'scales and execs that were answered have their events'],
    ['the API lists fewer events', (s) => s.apiEvents.set('web', [1, 2, 3]), 'events'],
    ['the follower skipped an event', (s) => s.followed.set('web', [1, 2, 3, 4, 5, 7, 8, 9, 10, 12]), 'events'],
    ['a container runs that Pier says is stopped', (s) => (s.containers[0]!.running = true), 'docker ps'],
    ['an instance runs with no container', (s) => (s.containers[1]!.running = false), 'docker ps'],
    ['a container with no instance', (s) => s.containers.push({ id: 'c3', name: 'web-echo-z', running: false, labels: { 'dev.pier.managed': 'true', 'dev.pier.instance': 'web-echo-z' } }), 'no orphan containers'],
    ['fewer running than desired', (s) => s.desired.set('web', { echo: 2 }), 'each app runs its current release with the desired counts'],
  ];
  for (const [what, change, check] of cases) {
    const s = consistent();
    change(s);
    assert.ok(failed(s).includes(check), `${what}: expected "${check}" to fail, failed: ${JSON.stringify(failed(s))}`);
  }
});

test('the follower check names the events it missed', () => {
  const s = consistent();
  s.followed.set('web', [1, 2, 3, 4, 5, 6, 8, 9, 10, 12]);
  const result = checkState(s).find((c) => c.name.startsWith('events: a client following'));
  assert.equal(result?.ok, false);
  assert.match(result?.detail ?? '', /web: 1 of 11 never seen by the follower \(ids 7\)/);
});

test('id holes are counted with the ids they skip', () => {
  assert.deepEqual(idHoles([1, 2, 3]), { count: 0, ids: 0 });
  assert.deepEqual(idHoles([1, 5, 6, 40]), { count: 2, ids: 36 });
});

test('a failure belongs to the latest fault whose window (to 30 s after recovery) holds it', () => {
  const faults: FaultRecord[] = [
    { kind: 'postgres-fast', at: 10_000, downMs: 5000, recoveredAt: 15_000, note: '' },
    { kind: 'api-kill', at: 30_000, downMs: 0, recoveredAt: 31_000, note: '' },
    { kind: 'docker-kill', at: 100_000, downMs: 5000, recoveredAt: null, note: '' },
  ];
  assert.equal(windowOf(faults, 9_999, 200_000), null);
  assert.equal(windowOf(faults, 20_000, 200_000)?.kind, 'postgres-fast');
  assert.equal(windowOf(faults, 40_000, 200_000)?.kind, 'api-kill', 'both windows hold it: the later fault');
  assert.equal(windowOf(faults, 61_001, 200_000), null);
  assert.equal(windowOf(faults, 150_000, 200_000)?.kind, 'docker-kill', 'never recovered: open until the end');
});

test('the same seed gives the same draws, per stream, and another seed others', () => {
  const draws = (seed: number, label: string) => {
    const r = createRandom(seed).fork(label);
    return Array.from({ length: 20 }, () => r.int(0, 1000));
  };
  assert.deepEqual(draws(42, 'faults'), draws(42, 'faults'));
  assert.notDeepEqual(draws(42, 'faults'), draws(42, 'operator-0'));
  assert.notDeepEqual(draws(42, 'faults'), draws(43, 'faults'));
  const r = createRandom(7);
  const picks = new Map<string, number>();
  for (let i = 0; i < 10_000; i++) {
    const v = r.weighted([['a', 3], ['b', 1]] as const);
    picks.set(v, (picks.get(v) ?? 0) + 1);
  }
  const a = picks.get('a') ?? 0;
  assert.ok(a > 7000 && a < 8000, `weights 3:1 gave ${a} of 10000 for a`);
});
