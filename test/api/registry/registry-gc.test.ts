// Registry garbage collection on the real docker-registry, the real engine and a real database:
// per live app the newest KEEP images, the current one and any with a running instance stay;
// older ones, those of deleted apps and builds never deployed go (after the grace time), their
// blobs reclaimed with the registry stopped and started again on the same port; a dry run
// deletes nothing; a rollback to a collected release is 410 E_IMAGE_COLLECTED and makes nothing.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { apps, instances, nodes, releases } from '../../../db/schema/index.js';
import type { AuthContext } from '../../../api/auth.js';
import { createApi } from '../../../api/app.js';
import { createAppDeleter } from '../../../api/app-deleter.js';
import { createBuildService } from '../../../api/build-service.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEdgeReports } from '../../../api/edge-reports.js';
import { createDeployService } from '../../../api/deploy-service.js';
import { createEventLog } from '../../../api/event-log.js';
import { parseManifest } from '../../../api/manifest.js';
import { isPierError } from '../../../api/pier-error.js';
import { createLocalRegistry } from '../../../api/registry/local-registry.js';
import { createRegistryClient } from '../../../api/registry/registry-client.js';
import { createRegistryGate } from '../../../api/registry/registry-gate.js';
import { createRegistryGc } from '../../../api/registry/registry-gc.js';
import { createDockerBuilder } from '../../../api/runtime/docker-builder.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { createTransactions } from '../../../api/transactions.js';
import { makeContext, removeRegistryImages, tarOf } from '../../support/build-context.js';
import { requireDocker } from '../../support/images.js';
import { createOrg, createToken } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';

async function setup(t: TestContext) {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const dir = await mkdtemp(join(tmpdir(), 'pier-registry-gc-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const registry = createLocalRegistry({ dir: join(dir, 'registry'), log });
  t.after(() => registry.close());
  assert.deepEqual(await registry.start(), { ok: true });
  t.after(() => removeRegistryImages(registry.host));
  const gate = createRegistryGate();
  const client = createRegistryClient(registry);
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  const runtime = createDockerRuntime({ log });
  const deploys = createDeployService({ db, runtime, transactions, enqueue: () => {}, registryImages: { host: registry.host, gate, client } });
  const builds = createBuildService({ builder: createDockerBuilder({ socketPath: '/var/run/docker.sock' }), registry, gate, log });
  const orgId = await createOrg(db, 'acme');
  const auth: AuthContext = { tokenId: 'tok_test', orgId, scope: 'deploy', appId: null };
  const gc = (keep: number, graceMs: number) => createRegistryGc({ db, registry, gate, keep, graceMs, log });
  /** A tiny image FROM scratch, built and pushed through the build service: `host/org/app@sha256:…`. */
  async function build(app: string, content: string, onLine: (line: string) => void = () => {}): Promise<string> {
    const ctx = await makeContext(t, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: content });
    const tarFile = join(dir, `${app}-${Math.random().toString(36).slice(2)}.tar`);
    await writeFile(tarFile, await tarOf(ctx));
    const built = await builds.build({ orgId, app, dockerfile: 'Dockerfile', args: {}, contextFile: tarFile, contextHash: `sha256:${Buffer.from(content).toString('hex').padEnd(64, '0').slice(0, 64)}` }, onLine);
    return built.image;
  }
  const deploy = (app: string, image: string) => deploys.deploy(auth, parseManifest(`app = "${app}"\nimage = "${image}"\n[processes.web]\ncmd = ["/f"]\ncount = 0\n`));
  const present = async (image: string) => {
    const [repo, digest] = image.slice(registry.host.length + 1).split('@') as [string, string];
    return (await client.manifestDigest(repo, digest)) !== null;
  };
  /** POST /v1/registry/gc on the API, with or without a collector. */
  async function route(withGc = true) {
    const collector = createRegistryGc({ db, registry, gate, keep: 1, graceMs: 60_000, log });
    const api = createApi({
      db,
      events,
      runtime,
      deploys,
      deleter: createAppDeleter({ runtime, transactions, onDeleted: () => {} }),
      edgeReports: createEdgeReports({ db, transactions, log, enqueue: () => {} }),
      edgeFeed: createEdgeFeed({ db, log, sharedAddresses: ['127.0.0.1'] }),
      log,
      sharedAddresses: ['127.0.0.1'],
      ready: () => true,
      registryGc: withGc ? { run: (o) => collector.run(o), ownerOrgId: () => orgId } : undefined,
    });
    return async (token: string, body = JSON.stringify({ dryRun: true })) => {
      const res = await api.request('/v1/registry/gc', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
    };
  }
  return { db, registry, gate, deploys, auth, gc, build, deploy, present, dir, route, orgId };
}

test('GC keeps the newest images, the current and running ones; removes older, deleted apps\' and never-deployed ones; a rollback to a collected release is 410', async (t) => {
  if (!(await requireDocker(t))) return;
  const s = await setup(t);
  const images: string[] = [];
  for (let i = 1; i <= 3; i++) images.push(await s.build('site', `site v${i}\n${'x'.repeat(2000 * i)}`));
  for (const image of images) await s.deploy('site', image);
  // v1 has an instance that should run (as if a rollout still used it): it stays.
  const [v1] = await s.db.select().from(releases).where(eq(releases.version, 1));
  const [node] = await s.db.insert(nodes).values({ id: 'node_gc', name: 'gc-test', endpoint: 'local' }).returning();
  await s.db.insert(instances).values({ id: 'site-web-gc', appId: v1!.appId, releaseId: v1!.id, process: 'web', nodeId: node!.id, desiredState: 'running' });
  const gone = await s.build('gone', 'an app that is deleted');
  await s.deploy('gone', gone);
  await s.db.update(apps).set({ deletedAt: new Date(), currentReleaseId: null }).where(eq(apps.name, 'gone'));
  const orphan = await s.build('site', 'pushed by pier build, never deployed');

  // Within the grace time nothing goes, whatever the retention says.
  const young = await s.gc(1, 3_600_000).run({ dryRun: true });
  assert.deepEqual(young.removed, []);

  const dry = await s.gc(1, 0).run({ dryRun: true });
  const reasons = Object.fromEntries(dry.removed.map((r) => [r.image, r.reason]));
  assert.deepEqual(reasons, { [images[1]!]: 'past-retention', [gone]: 'app-deleted', [orphan]: 'never-deployed' });
  assert.deepEqual(dry.removed.find((r) => r.image === images[1])?.releases, ['site v2']);
  assert.ok(dry.removed.every((r) => r.bytes > 0));
  for (const image of [...images, gone, orphan]) assert.ok(await s.present(image), `a dry run deletes nothing (${image})`);

  const done = await s.gc(1, 0).run();
  assert.equal(done.removed.length, 3);
  assert.equal(done.kept, 2, 'v1 (running) and v3 (the newest, current)');
  assert.equal(done.blobsCollected, true);
  assert.ok((done.bytesFreed ?? 0) > 0, `the blobs of the removed images were reclaimed: ${done.bytesFreed}`);
  for (const image of [images[1]!, gone, orphan]) assert.equal(await s.present(image), false, `${image} was collected`);
  for (const image of [images[0]!, images[2]!]) assert.equal(await s.present(image), true, `${image} was kept`);
  s.registry.ensureServing();

  const before = await s.db.select().from(releases).where(and(eq(releases.appId, v1!.appId)));
  const refused = await s.deploys.rollback(s.auth, 'site', 2).then(() => null, (err: unknown) => err);
  assert.ok(isPierError(refused), String(refused));
  assert.equal(refused.code, 'E_IMAGE_COLLECTED');
  assert.equal(refused.status, 410);
  assert.match(refused.message, /v2 .*garbage-collected/);
  assert.match(refused.hint ?? '', /pier deploy -c pier\.toml.*--registry-keep/);
  assert.equal((await s.db.select().from(releases).where(eq(releases.appId, v1!.appId))).length, before.length, 'no release was made');

  const rolled = await s.deploys.rollback(s.auth, 'site', 1);
  assert.equal(rolled.release.rollbackOf, 1);
  // Keeping two (v4 = v1's image, and v3's): nothing to collect, and the registry is not stopped for nothing.
  const again = await s.gc(2, 0).run();
  assert.deepEqual(again.removed, []);
  assert.equal(again.blobsCollected, false);
});

test('a push waits while a collection holds the registry; an image pushed within the grace time stays; POST /v1/registry/gc is for the server org\'s admin', async (t) => {
  if (!(await requireDocker(t))) return;
  const s = await setup(t);
  const first = await s.build('site', 'one');
  await s.deploy('site', first);
  let pushed = false;
  let building: Promise<string> | undefined;
  const result = await s.gate.exclusive(async () => {
    let waiting: () => void = () => {};
    const told = new Promise<void>((resolve) => (waiting = resolve));
    building = s.build('site', 'two', (line) => {
      if (/garbage collection is running/.test(line)) waiting();
    }).then((image) => {
      pushed = true;
      return image;
    });
    // The build ran; its push is held at the gate and says so.
    await Promise.race([told, building]);
    return pushed;
  });
  assert.equal(result, false, 'the push did not happen while the collection held the gate');
  const second = await building!;
  assert.ok(pushed);
  // Pushed by `pier build`, not deployed yet: it stays within the grace time, goes after it.
  assert.deepEqual((await s.gc(1, 60_000).run({ dryRun: true })).removed, []);
  assert.deepEqual((await s.gc(1, 0).run({ dryRun: true })).removed.map((r) => r.image), [second]);

  // The same through POST /v1/registry/gc (grace 60 s): only the server's own org's org-wide admin.
  const gcRoute = await s.route();
  const admin = await createToken(s.db, s.orgId, { scope: 'admin' });
  const ok = await gcRoute(admin);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body, { dryRun: true, registry: 'local', removed: [], kept: 2, bytesFreed: null, blobsCollected: false });
  const other = await createOrg(s.db, 'other');
  const [siteApp] = await s.db.select().from(apps).where(eq(apps.name, 'site'));
  for (const token of [
    await createToken(s.db, s.orgId, { scope: 'deploy' }),
    await createToken(s.db, s.orgId, { scope: 'admin', appId: siteApp!.id }),
    await createToken(s.db, other, { scope: 'admin' }),
  ]) {
    const refused = await gcRoute(token);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error?.code, 'E_FORBIDDEN');
  }
  assert.equal((await gcRoute(admin, '{"dryRun": "yes"}')).status, 400);
  assert.equal((await gcRoute(admin, 'not json')).status, 400);
  const none = await (await s.route(false))(admin);
  assert.equal(none.status, 503);
  assert.equal(none.body.error?.code, 'E_REGISTRY_UNAVAILABLE');
});

test('a release pinned while Pier\'s registry listened on another address (--registry-listen changed) keeps its image', async (t) => {
  if (!(await requireDocker(t))) return;
  const s = await setup(t);
  const image = await s.build('moved', 'built before the registry moved');
  await s.deploy('moved', image);
  const [row] = await s.db.select().from(releases).where(eq(releases.imageDigest, image));
  assert.ok(row, 'the release pins the pushed image');
  await s.db.update(releases).set({ imageDigest: image.replace(s.registry.host, '198.18.0.1:5000') }).where(eq(releases.id, row.id));
  const dry = await s.gc(1, 0).run({ dryRun: true });
  assert.deepEqual(dry.removed, [], 'the current release\'s image is the same storage under another address');
});
