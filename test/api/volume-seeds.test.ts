// Seeding a preview's volumes (`[env.preview.volumes.data] from = "snapshot:staging/data@latest"`):
// the preview's first deploy creates the volume from staging's latest snapshot, a later deploy never
// overwrites it, a missing snapshot refuses the deploy (leaving nothing), and a token may seed only
// from environments it may act in. Control plane with the in-memory runtime, the dir volume driver
// and the real database (PGlite, or PostgreSQL with DATABASE_URL).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { and, eq, isNull } from 'drizzle-orm';
import { pino } from 'pino';
import { openVolumeDriver } from '../../api/volumes/open-volume-driver.js';
import { Secret } from '../../api/registry/registry-credentials.js';
import { createAgentRoots } from '../../api/volumes/agent-roots.js';
import type { VolumeDriver } from '../../api/volumes/volume-driver.js';
import { createVolumeRoots } from '../../api/volumes/volume-roots.js';
import { createVolumeService } from '../../api/volumes/volume-service.js';
import { apps, events, instances, releases, volumes } from '../../db/schema/index.js';
import { tempRoot } from '../support/btrfs-loop.js';
import { startNodeAgent } from '../support/node-agent.js';
import { createControlPlane, IMAGE } from '../support/memory-control-plane.js';

const env = (name: string) => ({ 'pier-env': name });

const manifest = (extra = '', version = '1') => `
app = "store"
image = "${IMAGE}"

[processes.db]
cmd = ["sleep", "1000"]
count = 1
env = { VERSION = "${version}" }

[[volumes]]
name = "data"
process = "db"
path = "/data"

[deploy]
drain = "0ms"
${extra}`;
const fromStaging = '\n[env.preview.volumes.data]\nfrom = "snapshot:staging/data@latest"\n';

test("a preview's first deploy seeds its volume from staging's latest snapshot, and no later deploy overwrites it", async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'dir');
  const cp = await createControlPlane(t, { volumeDriver: driver });
  const volumeService = createVolumeService({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, driver, nodeId: 'node_local', log: pino({ level: 'silent' }), enqueue: () => undefined });
  const error = async (res: Response) => ((await res.json()) as { error: { code: string; message: string } }).error;
  const volumeOf = async (environment: string) => {
    const [row] = await cp.db.select({ v: volumes }).from(volumes).innerJoin(apps, eq(apps.id, volumes.appId)).where(and(eq(apps.environment, environment), isNull(apps.deletedAt), isNull(volumes.deletedAt)));
    return row?.v;
  };

  // Staging runs the app (the [env.preview] table does not apply there) and writes to its volume.
  const staging = await cp.request('/v1/deploys', { body: { manifest: manifest(fromStaging) }, headers: env('staging') });
  assert.equal(staging.status, 201, await staging.clone().text());
  const stagingApp = ((await staging.json()) as { app: { id: string } }).app.id;
  await cp.converge(stagingApp, async () => (await volumeOf('staging'))?.attachedInstanceId != null, 'staging attached its volume');
  const stagingVolume = (await volumeOf('staging'))!;
  await writeFile(join(driver.volumePath(stagingVolume.id), 'hello.txt'), 'from staging v1');

  // No snapshot yet: the preview's deploy is refused with a code, and leaves no app and no data.
  const early = await cp.request('/v1/deploys', { body: { manifest: manifest(fromStaging) }, headers: env('pr-1') });
  assert.equal(early.status, 422);
  const refusal = await error(early);
  assert.equal(refusal.code, 'E_SEED_NOT_FOUND');
  assert.match(refusal.message, /staging\/data@latest/);
  assert.equal((await cp.db.select().from(apps).where(eq(apps.environment, 'pr-1'))).length, 0);

  const stagingAuth = { ...cp.auth, environment: 'staging' };
  const snap = await volumeService.snapshot(stagingAuth, 'store', 'data');
  const preview = await cp.request('/v1/deploys', { body: { manifest: manifest(fromStaging) }, headers: env('pr-1') });
  assert.equal(preview.status, 201, await preview.clone().text());
  const previewApp = ((await preview.json()) as { app: { id: string } }).app.id;
  const seeded = (await volumeOf('pr-1'))!;
  assert.notEqual(seeded.id, stagingVolume.id);
  assert.equal(await readFile(join(driver.volumePath(seeded.id), 'hello.txt'), 'utf8'), 'from staging v1');
  const [release] = await cp.db.select({ declared: releases.declared }).from(releases).where(eq(releases.appId, previewApp));
  assert.deepEqual(release?.declared?.seeds, { data: { from: 'snapshot:staging/data@latest', snapshot: snap.id, environment: 'staging' } });
  const [event] = await cp.db.select().from(events).where(and(eq(events.appId, previewApp), eq(events.type, 'volume.seeded')));
  assert.match(event?.message ?? '', new RegExp(`from snapshot ${snap.id}`));

  // The preview's instance runs on the seeded volume, not on a new empty one.
  await cp.converge(previewApp, async () => (await cp.db.select().from(instances).where(and(eq(instances.appId, previewApp), eq(instances.observedState, 'running')))).length === 1, 'the preview runs');
  assert.equal((await volumeOf('pr-1'))?.id, seeded.id);
  assert.ok((await volumeOf('pr-1'))?.attachedInstanceId);

  // The preview writes; staging moves on with a newer snapshot; a new deploy of the preview keeps its data.
  await writeFile(join(driver.volumePath(seeded.id), 'hello.txt'), 'the preview wrote this');
  await writeFile(join(driver.volumePath(stagingVolume.id), 'hello.txt'), 'from staging v2');
  await volumeService.snapshot(stagingAuth, 'store', 'data');
  const v2 = await cp.request('/v1/deploys', { body: { manifest: manifest(fromStaging, '2') }, headers: env('pr-1') });
  assert.equal(v2.status, 201, await v2.clone().text());
  assert.equal((await volumeOf('pr-1'))?.id, seeded.id);
  assert.equal(await readFile(join(driver.volumePath(seeded.id), 'hello.txt'), 'utf8'), 'the preview wrote this');
  assert.equal((await cp.db.select().from(events).where(and(eq(events.appId, previewApp), eq(events.type, 'volume.seeded')))).length, 1);

  // A token bound to pr-* may not read staging, so it may not seed from it (nor from production);
  // one bound to "pr-*,staging" may. A snapshot id the token may not read is as good as missing.
  const token = async (environments: string) => {
    const res = await cp.request('/v1/tokens', { body: { scope: 'deploy', environments } });
    return ((await res.json()) as { secret: string }).secret;
  };
  const previewsOnly = await token('pr-*');
  const forbidden = await cp.request('/v1/deploys', { token: previewsOnly, body: { manifest: manifest(fromStaging) }, headers: env('pr-2') });
  assert.equal(forbidden.status, 403);
  assert.equal((await error(forbidden)).code, 'E_ENVIRONMENT_FORBIDDEN');
  const fromProduction = manifest('\n[env.preview.volumes.data]\nfrom = "snapshot:production/data@latest"\n');
  assert.equal((await error(await cp.request('/v1/deploys', { token: previewsOnly, body: { manifest: fromProduction }, headers: env('pr-2') }))).code, 'E_ENVIRONMENT_FORBIDDEN');
  const byId = manifest(`\n[env.preview.volumes.data]\nfrom = "snapshot:${snap.id}"\n`);
  assert.equal((await error(await cp.request('/v1/deploys', { token: previewsOnly, body: { manifest: byId }, headers: env('pr-2') }))).code, 'E_SEED_NOT_FOUND');
  const withStaging = await token('pr-*,staging');
  const allowed = await cp.request('/v1/deploys', { token: withStaging, body: { manifest: byId }, headers: env('pr-3') });
  assert.equal(allowed.status, 201, await allowed.clone().text());
  assert.equal(await readFile(join(driver.volumePath((await volumeOf('pr-3'))!.id), 'hello.txt'), 'utf8'), 'from staging v1');

  // Refused deploys left no volume data behind: every folder is a volume row's.
  const rows = await cp.db.select({ id: volumes.id }).from(volumes);
  assert.deepEqual((await readdir(join(driver.root, 'volumes'))).sort(), rows.map((r) => r.id).sort());
});

test('a seed naming a volume the manifest lacks, or written wrong, is refused at deploy; "empty" deploys', async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'dir');
  const cp = await createControlPlane(t, { volumeDriver: driver });
  const unknown = await cp.request('/v1/deploys', { body: { manifest: manifest('\n[env.preview.volumes.cache]\nfrom = "snapshot:staging/cache@latest"\n') }, headers: env('pr-1') });
  assert.equal(unknown.status, 422);
  assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'E_SEED_INVALID');
  const bad = await cp.request('/v1/deploys', { body: { manifest: manifest('\n[env.preview.volumes.data]\nfrom = "staging"\n') }, headers: env('pr-1') });
  assert.equal(bad.status, 422);
  const err = ((await bad.json()) as { error: { code: string; details: { path: string }[] } }).error;
  assert.equal(err.code, 'E_MANIFEST_INVALID');
  assert.equal(err.details[0]?.path, 'env.preview.volumes.data.from');
  const empty = await cp.request('/v1/deploys', { body: { manifest: manifest('\n[env.preview.volumes.data]\nfrom = "empty"\n') }, headers: env('pr-1') });
  assert.equal(empty.status, 201, await empty.clone().text());
});

test("a seed is restored where its snapshot is kept: on a second storage root, or on a swarm node's agent", async (t) => {
  const driver = await openVolumeDriver(await tempRoot(t), 'dir');
  const second = await openVolumeDriver(await tempRoot(t), 'dir');
  // A real `pier agent` on its own root stands for a swarm node (node:10.9.0.2).
  const agent = await startNodeAgent(t, await tempRoot(t));
  const nodes = createAgentRoots({ agents: { '10.9.0.2': agent.url }, token: new Secret(agent.token) }, pino({ level: 'silent' }));
  const node = await nodes.connect('10.9.0.2');
  const roots = createVolumeRoots(new Map([['default', driver], ['second', second]]), nodes);
  const cp = await createControlPlane(t, { volumeDriver: driver, volumeRoots: roots });
  const volumeService = createVolumeService({ db: cp.db, transactions: cp.transactions, runtime: cp.runtime, driver, roots, nodeId: 'node_local', log: pino({ level: 'silent' }), enqueue: () => undefined });
  const staging = await cp.request('/v1/deploys', { body: { manifest: manifest() }, headers: env('staging') });
  assert.equal(staging.status, 201, await staging.clone().text());
  const stagingAuth = { ...cp.auth, environment: 'staging' };

  const seedFrom = async (root: string, at: VolumeDriver, preview: string) => {
    // A volume made on that root (as after a move there), written, and snapshotted there.
    const made = await volumeService.create(stagingAuth, 'store', `on-${preview}`, null, root);
    assert.equal(made.root, root);
    await writeFile(join(at.volumePath(made.id), 'kept.txt'), `kept on ${root}`);
    const snap = await volumeService.snapshot(stagingAuth, 'store', `on-${preview}`);
    assert.equal(snap.root, root);
    const res = await cp.request('/v1/deploys', { body: { manifest: manifest(`\n[env.preview.volumes.data]\nfrom = "snapshot:${snap.id}"\n`) }, headers: env(preview) });
    assert.equal(res.status, 201, await res.clone().text());
    const appId = ((await res.json()) as { app: { id: string } }).app.id;
    const [seeded] = await cp.db.select().from(volumes).where(and(eq(volumes.appId, appId), isNull(volumes.deletedAt)));
    assert.equal(seeded?.root, root);
    assert.equal(seeded.nodeId, made.nodeId);
    assert.equal(await readFile(join(at.volumePath(seeded.id), 'kept.txt'), 'utf8'), `kept on ${root}`);
    // Nothing was restored onto the default root for it.
    assert.equal(existsSync(driver.volumePath(seeded.id)), false);
    const [event] = await cp.db.select().from(events).where(and(eq(events.appId, appId), eq(events.type, 'volume.seeded')));
    return { appId, seeded, message: event?.message ?? '' };
  };

  const onSecond = await seedFrom('second', second, 'pr-7');
  assert.match(onSecond.message, /on root second/);
  // The preview's instance runs with the seeded volume mounted from the second root.
  await cp.converge(onSecond.appId, async () => (await cp.db.select().from(volumes).where(eq(volumes.id, onSecond.seeded.id)))[0]?.attachedInstanceId != null, 'the preview attached its seeded volume');
  const [instance] = await cp.db.select().from(instances).where(and(eq(instances.appId, onSecond.appId), eq(instances.desiredState, 'running')));
  const mounts = cp.runtime.specOf(instance!.containerId!)?.mounts ?? [];
  assert.equal(mounts.length, 1, JSON.stringify(mounts));
  assert.equal(mounts[0]?.target, '/data');
  assert.equal(cp.runtime.volumeDevice(mounts[0]!.volume), second.volumePath(onSecond.seeded.id));

  // On a node's root the copy is made by that node's agent, and the volume is on that node.
  const onNode = await seedFrom('node:10.9.0.2', node, 'pr-8');
  assert.match(onNode.message, /on node 10\.9\.0\.2/);
  assert.equal(await node.exists(onNode.seeded.id), true);
});
