// Desired counts and where they come from (issue 9, defect 4): a `count` written in pier.toml
// wins at deploy time and clears that process's `pier scale` entry; a manifest without `count`
// keeps the `pier scale` count, else runs one; a rollback clears nothing. `count = 0` runs
// nothing, even after `pier scale web=2` (which used to start two instances of the image's
// default command: the scale entry won over the manifest that left `cmd` out).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { apps, events } from '../../db/schema/index.js';
import { desiredCounts, overridesClearedBy } from '../../api/desired-counts.js';
import { parseManifest } from '../../api/manifest.js';
import { LABELS } from '../../api/runtime/runtime.js';
import { createControlPlane, IMAGE, type ControlPlane } from '../support/memory-control-plane.js';

const manifest = (counts: string) =>
  parseManifest(`app = "a"\nimage = "x:1"\n[processes.web]\n${counts}\n[processes.worker]\ncmd = ["sleep", "9"]`);

test('desiredCounts: pier scale, else the manifest count, else 1, each with its source', () => {
  const m = manifest('count = 3');
  assert.deepEqual(desiredCounts({ scale: {}, scaledAt: {} }, m, 4), [
    { process: 'web', count: 3, source: { from: 'manifest', release: 4 } },
    { process: 'worker', count: 1, source: { from: 'default', release: 4 } },
  ]);
  assert.deepEqual(desiredCounts({ scale: { worker: 5 }, scaledAt: { worker: '2026-01-02T03:04:05.000Z' } }, m, 4)[1], {
    process: 'worker',
    count: 5,
    source: { from: 'scale', at: '2026-01-02T03:04:05.000Z' },
  });
  assert.deepEqual(overridesClearedBy({ scale: { web: 2, worker: 5 } }, m), { web: { was: 2, now: 3 } }, 'only a written count clears');
  assert.deepEqual(overridesClearedBy({ scale: { web: 2 } }, manifest('')), {});
});

const cpManifest = (count: string, cmd = 'cmd = ["sleep", "3600"]') => `app = "counted"
image = "${IMAGE}"
[processes.web]
${cmd}
${count}
[deploy]
drain = "0s"`;

async function running(cp: ControlPlane, appId: string): Promise<number> {
  return (await cp.runtime.list({ [LABELS.app]: appId })).filter((c) => c.state === 'running').length;
}

async function settled(cp: ControlPlane, appId: string, deployments: number, want: number): Promise<void> {
  await cp.converge(
    appId,
    async () => (await cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, 'deploy.succeeded')))).length === deployments && (await running(cp, appId)) === want,
    `${deployments} rollouts with ${want} running`,
  );
}

test('after pier scale web=2, deploying count = 0 (no cmd) runs nothing, and says the manifest replaced the scale count', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(cpManifest('count = 1'));
  await settled(cp, app.id, 1, 1);
  await cp.deploys.scale(cp.auth, 'counted', { web: 2 });
  await settled(cp, app.id, 1, 2);

  // What the user wrote to stop the app: no command, since nothing should run.
  const v2 = await cp.deploy(cpManifest('count = 0', ''));
  await settled(cp, app.id, 2, 0);
  assert.equal(v2.deployment.progress.desired.web, 0);
  const runs = [...cp.runtime.runs().keys()];
  assert.equal(runs.length, 2, `only the two v1 instances ever ran: ${runs.join(', ')}`);
  const [row] = await cp.db.select().from(apps).where(eq(apps.id, app.id));
  assert.deepEqual([row?.scale, row?.scaledAt], [{}, {}], 'the scale entry is cleared');
  const [scaled] = await cp.db.select().from(events).where(and(eq(events.appId, app.id), eq(events.reason, 'manifest-count')));
  assert.match(scaled?.message ?? '', /v2 sets web=0 \(was 2 from pier scale\)/);
});

test('a manifest without count keeps the pier scale count; one that writes count wins again; a rollback clears nothing', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(cpManifest(''));
  await settled(cp, app.id, 1, 1);
  await cp.deploys.scale(cp.auth, 'counted', { web: 3 });
  await settled(cp, app.id, 1, 3);
  // A new release (a changed env) that leaves count out: still 3.
  await cp.deploy(cpManifest('[processes.web.env]\nV = "2"'));
  await settled(cp, app.id, 2, 3);
  const [row] = await cp.db.select().from(apps).where(eq(apps.id, app.id));
  const at = row?.scaledAt.web;
  assert.ok(at, 'the time of the pier scale');
  assert.deepEqual(desiredCounts(row as NonNullable<typeof row>, parseManifest(cpManifest('')), 2)[0]?.source, { from: 'scale', at });

  await cp.deploy(cpManifest('count = 2'));
  await settled(cp, app.id, 3, 2);
  await cp.deploys.scale(cp.auth, 'counted', { web: 4 });
  await settled(cp, app.id, 3, 4);
  // Rolling back to v3 (count = 2 written) changes code, not capacity: pier scale's 4 stays.
  await cp.deploys.rollback(cp.auth, 'counted', 3);
  await settled(cp, app.id, 4, 4);
});
