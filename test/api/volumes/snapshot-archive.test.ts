// Export and import through the API, on both drivers, each on this machine and behind a real node
// agent (`pier agent`: the file is made, checked and extracted there, and the snapshot's sha256
// taken there): the file round-trips to a snapshot with the same sha256 that restores to the same
// files; a truncated, damaged or foreign file is refused with E_SNAPSHOT_CORRUPT and leaves no
// snapshot (row or data) behind. A create or an import goes to the root it names, a node agent's
// too. The roots are all on this machine, so the test reads their files.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { pino } from 'pino';
import { createApi } from '../../../api/app.js';
import { createAppDeleter } from '../../../api/app-deleter.js';
import { createDeployService } from '../../../api/deploy-service.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEdgeReports } from '../../../api/edge-reports.js';
import { createEventLog } from '../../../api/event-log.js';
import { createTransactions } from '../../../api/transactions.js';
import { connectRemoteVolumeDriver } from '../../../api/volumes/drivers/remote-driver.js';
import { createAgentRoots } from '../../../api/volumes/agent-roots.js';
import { Secret } from '../../../api/registry/registry-credentials.js';
import { openVolumeDriver } from '../../../api/volumes/open-volume-driver.js';
import type { VolumeDriver } from '../../../api/volumes/volume-driver.js';
import { createVolumeRoots, DEFAULT_ROOT, type VolumeRoots } from '../../../api/volumes/volume-roots.js';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { SnapshotView, VolumeView } from '../../../api/volumes/volume-views.js';
import { createVolumeService } from '../../../api/volumes/volume-service.js';
import { nodes } from '../../../db/schema/index.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';
import { startNodeAgent, type NodeAgent } from '../../support/node-agent.js';
import { createTestDb } from '../../support/test-db.js';
import { createApp, createOrg, createToken } from '../../support/test-api.js';
import { throwingRuntime } from '../../support/throwing-runtime.js';

const exec = promisify(execFile);

async function setup(t: TestContext, driver: VolumeDriver, roots?: VolumeRoots) {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const runtime = throwingRuntime();
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  await db.insert(nodes).values({ id: 'node_local', name: 'local', endpoint: 'unix:///dev/null' });
  const volumes = createVolumeService({ db, transactions, runtime, driver, roots, nodeId: 'node_local', log, enqueue: () => {} });
  const app = createApi({
    db,
    events,
    runtime,
    deploys: createDeployService({ db, runtime, transactions, enqueue: () => {} }),
    deleter: createAppDeleter({ runtime, transactions, onDeleted: () => {} }),
    edgeFeed: createEdgeFeed({ db, log, sharedAddresses: [] }),
    edgeReports: createEdgeReports({ db, transactions, log, enqueue: () => {} }),
    log,
    sharedAddresses: [],
    volumes,
    ready: () => true,
  });
  const orgId = await createOrg(db, 'acme');
  await createApp(db, orgId, 'kv');
  const token = await createToken(db, orgId, { scope: 'deploy' });
  const call = (path: string, init: { method?: string; json?: unknown; raw?: Buffer } = {}) =>
    app.request(`/v1/apps/kv${path}`, {
      method: init.method ?? (init.json !== undefined || init.raw ? 'POST' : 'GET'),
      headers: { authorization: `Bearer ${token}`, 'content-type': init.raw ? 'application/octet-stream' : 'application/json' },
      body: init.raw ?? (init.json === undefined ? undefined : JSON.stringify(init.json)),
    });
  return { driver, call };
}

for (const [kind, where] of [['dir', 'local'], ['btrfs', 'local'], ['dir', 'agent'], ['btrfs', 'agent']] as const) {
  test(`${kind}${where === 'agent' ? ' behind a node agent' : ''}: a snapshot exported and imported restores to the same files; a truncated or damaged file changes nothing`, async (t) => {
    const root = kind === 'dir' ? await tempRoot(t) : await btrfsLoop(t);
    if (!root) return;
    let agent: NodeAgent | null = null;
    // Behind an agent the root is where only the agent sees it: the API server's code could read no file of it.
    if (where === 'agent') agent = await startNodeAgent(t, root, [], { hiddenAt: await tempRoot(t) });
    const driver = agent ? await connectRemoteVolumeDriver({ url: agent.url, token: agent.token }) : await openVolumeDriver(root);
    const { call } = await setup(t, driver);
    assert.equal(driver.kind, kind);
    if (agent) assert.deepEqual(await readdir(driver.root), [], 'the agent\'s root path holds nothing here');
    // This test's own view of the root's files.
    const volumePath = (id: string) => join(root, 'volumes', id);
    const snapshotPath = (id: string) => join(root, 'snapshots', id);

    const created = (await (await call('/volumes', { json: { name: 'data' } })).json()) as { volume: VolumeView };
    const path = volumePath(created.volume.id);
    await mkdir(join(path, 'dir'));
    await writeFile(join(path, 'dir', 'a.txt'), '1\n2\n3\n');
    await writeFile(join(path, 'b.bin'), Buffer.alloc(200_000, 9));
    const taken = await call('/volumes/data/snapshots', { method: 'POST', json: {} });
    assert.equal(taken.status, 201);
    const snap = ((await taken.json()) as { snapshot: SnapshotView }).snapshot;
    assert.equal(snap.sha256, (await treeHash(path)).sha256);
    assert.equal(snap.files, 2);

    const exported = await call(`/snapshots/${snap.id}/export`);
    assert.equal(exported.status, 200);
    const file = Buffer.from(await exported.arrayBuffer());
    assert.ok(file.subarray(0, 16).toString().startsWith('PIER-SNAPSHOT/2 '));
    assert.match(file.subarray(file.length - 91).toString(), /^PIER-END \d{16} [0-9a-f]{64}\n$/, 'the trailer holds the payload length and sha256');

    const snapshotCount = async () => ((await (await call('/snapshots')).json()) as { snapshots: SnapshotView[] }).snapshots.length;
    const onDisk = async () => (await readdir(join(root, 'snapshots'))).sort();
    const before = { rows: await snapshotCount(), dirs: await onDisk() };
    const refusals: [string, Buffer][] = [
      ['truncated', file.subarray(0, file.length - 1000)],
      ['cut inside the header', file.subarray(0, 20)],
      ['damaged', Buffer.concat([file.subarray(0, file.length - 5000), Buffer.from([file[file.length - 5000]! ^ 0xff]), file.subarray(file.length - 4999)])],
      ['not a snapshot file', Buffer.from('hello\n')],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [what, body] of refusals) {
      const res = await call('/snapshots/import', { raw: body });
      const answer = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(res.status, 422, `${what}: ${JSON.stringify(answer)}`);
      assert.equal(answer.error.code, 'E_SNAPSHOT_CORRUPT', what);
      assert.match(answer.error.message, /nothing was imported/);
      assert.equal(await snapshotCount(), before.rows, `${what}: no snapshot row`);
      assert.deepEqual(await onDisk(), before.dirs, `${what}: no snapshot data`);
    }
    assert.match(((await (await call('/snapshots/import', { raw: refusals[0]![1] })).json()) as { error: { message: string } }).error.message, /truncated/);

    const imported = await call('/snapshots/import', { raw: file });
    assert.equal(imported.status, 201);
    const copy = ((await imported.json()) as { snapshot: SnapshotView }).snapshot;
    assert.notEqual(copy.id, snap.id);
    assert.equal(copy.kind, 'imported');
    assert.equal(copy.sha256, snap.sha256);

    const restored = await call(`/snapshots/${copy.id}/restore`, { json: { name: 'copy' } });
    assert.equal(restored.status, 200);
    const volume = ((await restored.json()) as { volume: VolumeView }).volume;
    assert.equal(volume.name, 'copy');
    assert.equal((await treeHash(volumePath(volume.id))).sha256, snap.sha256);
    assert.equal(await readFile(join(volumePath(volume.id), 'dir', 'a.txt'), 'utf8'), '1\n2\n3\n');

    // A file of the first format (payload length and sha256 in the header) is still imported.
    const tar = (await exec('tar', ['-C', snapshotPath(snap.id), '--sort=name', '--numeric-owner', '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })).stdout;
    const v1 = { snapshot: { id: snap.id, volume: 'data', sha256: snap.sha256, bytes: snap.bytes, files: snap.files, createdAt: snap.createdAt }, payload: { format: 'tar', bytes: tar.length, sha256: createHash('sha256').update(tar).digest('hex') } };
    const old = await call('/snapshots/import', { raw: Buffer.concat([Buffer.from(`PIER-SNAPSHOT/1 ${JSON.stringify(v1)}\n`), tar]) });
    assert.equal(old.status, 201, await old.clone().text());
    assert.equal(((await old.json()) as { snapshot: SnapshotView }).snapshot.sha256, snap.sha256);

    if (agent) {
      // The agent gone: an export is refused with a coded error, never a 200 cut short.
      await agent.stop();
      const refused = await call(`/snapshots/${snap.id}/export`);
      assert.equal(refused.status, 503);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'E_AGENT_UNREACHABLE');
    }
  });
}

test('an import goes to the root it names (`?root=`, pier volumes import --root): the snapshot and a volume restored from it are there; an unknown root is E_VOLUME_ROOT_UNKNOWN naming the roots, and nothing is imported', async (t) => {
  const base = await tempRoot(t);
  const fast = await btrfsLoop(t);
  if (!fast) return;
  const roots = createVolumeRoots(
    new Map([
      [DEFAULT_ROOT, await openVolumeDriver(base)],
      ['fast', await openVolumeDriver(fast)],
    ]),
  );
  const { call } = await setup(t, roots.default, roots);
  const created = (await (await call('/volumes', { json: { name: 'data' } })).json()) as { volume: VolumeView };
  await writeFile(join(base, 'volumes', created.volume.id, 'a.txt'), 'one\ntwo\n');
  const snap = ((await (await call('/volumes/data/snapshots', { method: 'POST', json: {} })).json()) as { snapshot: SnapshotView }).snapshot;
  const file = Buffer.from(await (await call(`/snapshots/${snap.id}/export`)).arrayBuffer());
  const count = async () => ((await (await call('/snapshots')).json()) as { snapshots: SnapshotView[] }).snapshots.length;
  const before = await count();

  const refused = await call('/snapshots/import?root=nope', { raw: file });
  const error = ((await refused.json()) as { error: { code: string; message: string; hint: string } }).error;
  assert.equal(refused.status, 400);
  assert.equal(error.code, 'E_VOLUME_ROOT_UNKNOWN');
  assert.match(error.message, /"nope" \(its roots: default, fast\)/);
  assert.equal(await count(), before, 'nothing imported');
  assert.deepEqual(await readdir(join(fast, 'snapshots')).catch(() => []), [], 'nothing on any root');

  const res = await call('/snapshots/import?root=fast', { raw: file });
  assert.equal(res.status, 201, await res.clone().text());
  const copy = ((await res.json()) as { snapshot: SnapshotView }).snapshot;
  assert.equal(copy.root, 'fast');
  assert.equal(copy.driver, 'btrfs');
  assert.equal(copy.sha256, snap.sha256);
  assert.equal((await treeHash(join(fast, 'snapshots', copy.id))).sha256, snap.sha256, 'the data is on the root named');
  assert.equal((await readdir(join(base, 'snapshots'))).includes(copy.id), false, 'and not on the default root');
  const restored = ((await (await call(`/snapshots/${copy.id}/restore`, { json: { name: 'copy' } })).json()) as { volume: VolumeView }).volume;
  assert.equal(restored.root, 'fast');
  assert.equal(restored.driver, 'btrfs');
  assert.equal(await readFile(join(fast, 'volumes', restored.id, 'a.txt'), 'utf8'), 'one\ntwo\n');

  // Without a root: the default one, as before.
  const plain = ((await (await call('/snapshots/import', { raw: file })).json()) as { snapshot: SnapshotView }).snapshot;
  assert.equal(plain.root, 'default');
  assert.equal((await readdir(join(base, 'snapshots'))).includes(plain.id), true);
});

test('a volume is made on the root its create names (pier volumes create --root): a node agent\'s root too; an unknown root or a node without an agent is refused and makes nothing', async (t) => {
  const base = await tempRoot(t);
  const nodeRoot = await tempRoot(t);
  const agent = await startNodeAgent(t, nodeRoot, [], { hiddenAt: await tempRoot(t) });
  const agents = createAgentRoots({ agents: { '10.9.0.2': agent.url }, token: new Secret(agent.token) }, pino({ level: 'silent' }));
  await agents.connectAll();
  const roots = createVolumeRoots(new Map([[DEFAULT_ROOT, await openVolumeDriver(base, 'dir')]]), agents);
  const { call } = await setup(t, roots.default, roots);
  const names = async () => ((await (await call('/volumes')).json()) as { volumes: VolumeView[] }).volumes.map((v) => v.name);

  for (const [root, status, code] of [
    ['nope', 400, 'E_VOLUME_ROOT_UNKNOWN'],
    ['node:10.9.0.3', 503, 'E_NODE_AGENT_MISSING'],
  ] as const) {
    const res = await call('/volumes', { json: { name: 'data', root } });
    const error = ((await res.json()) as { error: { code: string; message: string; hint: string } }).error;
    assert.equal(error.code, code, error.message);
    assert.equal(res.status, status);
  }
  assert.deepEqual(await names(), [], 'nothing was made');
  assert.deepEqual(await readdir(join(nodeRoot, 'volumes')).catch((): string[] => []), []);

  const res = await call('/volumes', { json: { name: 'data', root: 'node:10.9.0.2' } });
  assert.equal(res.status, 201, await res.clone().text());
  const made = ((await res.json()) as { volume: VolumeView }).volume;
  assert.equal(made.root, 'node:10.9.0.2');
  assert.deepEqual(await readdir(join(nodeRoot, 'volumes')), [made.id], 'the data is on the node, made by its agent');
  assert.equal((await readdir(join(base, 'volumes')).catch((): string[] => [])).includes(made.id), false);
  const again = await call('/volumes', { json: { name: 'data' } });
  assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'E_VOLUME_EXISTS');
  // Without a root: the default one.
  const plain = ((await (await call('/volumes', { json: { name: 'plain' } })).json()) as { volume: VolumeView }).volume;
  assert.equal(plain.root, 'default');
  assert.deepEqual(await readdir(join(base, 'volumes')), [plain.id]);
});
