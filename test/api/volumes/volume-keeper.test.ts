// The volume keeper on both real drivers (dir on a temp folder, btrfs on a loop file of the test's
// own) and a real database, with a clock the test moves: scheduled snapshots come when due and
// once after a long downtime (a new keeper, as after a restart, too), retention by count and by
// age removes data and rows, a failing snapshot is recorded and retried later (not every pass),
// and the volumes of a deleted app end with a final snapshot kept for the undelete window, listed
// as deleted, then purged with every snapshot of theirs. A delete whose data removal fails is
// still a delete; the purge removes the data before the row.
import assert from 'node:assert/strict';
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { and, eq } from 'drizzle-orm';
import { pino } from 'pino';
import { createAppDeleter } from '../../../api/app-deleter.js';
import type { AuthContext } from '../../../api/auth.js';
import { createEventLog } from '../../../api/event-log.js';
import { parseManifest } from '../../../api/manifest.js';
import { createMemoryRuntime } from '../../../api/runtime/memory-runtime.js';
import { createTransactions } from '../../../api/transactions.js';
import { openVolumeDriver } from '../../../api/volumes/open-volume-driver.js';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { VolumeDriver } from '../../../api/volumes/volume-driver.js';
import { createVolumeKeeper } from '../../../api/volumes/volume-keeper.js';
import { createVolumeService } from '../../../api/volumes/volume-service.js';
import { apps, events, nodes, releases, snapshots } from '../../../db/schema/index.js';
import { btrfsLoop, tempRoot } from '../../support/btrfs-loop.js';
import { createTestDb } from '../../support/test-db.js';
import { createApp, createOrg } from '../../support/test-api.js';

const H = 3_600_000;
const M = 60_000;

const manifest = (extra: string) =>
  parseManifest(`app = "kv"
image = "busybox:1"
[processes.db]
cmd = ["sleep", "1000"]
[[volumes]]
name = "data"
process = "db"
path = "/data"
${extra}
`);

async function setup(t: TestContext, driver: VolumeDriver, volumeExtra: string) {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const runtime = createMemoryRuntime();
  const transactions = createTransactions({ db, events: createEventLog(db) });
  await db.insert(nodes).values({ id: 'node_local', name: 'local', endpoint: 'unix:///dev/null' });
  const orgId = await createOrg(db, 'acme');
  const appId = await createApp(db, orgId, 'kv');
  await db.insert(releases).values({ id: 'rel_1', appId, version: 1, manifest: manifest(volumeExtra), image: 'busybox:1', imageId: 'sha256:x', imageDigest: 'sha256:x', configHash: 'h' });
  await db.update(apps).set({ currentReleaseId: 'rel_1' }).where(eq(apps.id, appId));
  const clock = { now: Date.now() };
  const service = createVolumeService({ db, transactions, runtime, driver, nodeId: 'node_local', log, enqueue: () => {}, deletedRetentionMs: 48 * H, now: () => clock.now });
  const keeper = () => createVolumeKeeper({ db, transactions, service, log, retryMs: M });
  const auth: AuthContext = { tokenId: 'tok_test', orgId, scope: 'admin', appId: null };
  const volume = await service.create(auth, 'kv', 'data', null);
  await writeFile(join(driver.volumePath(volume.id), 'counter'), '1\n2\n3\n');
  const scheduled = () => db.select().from(snapshots).where(and(eq(snapshots.volumeId, volume.id), eq(snapshots.kind, 'scheduled'))).orderBy(snapshots.createdAt);
  const eventsOf = async (type: string) => (await db.select().from(events).where(eq(events.type, type))).map((e) => e);
  const start = clock.now;
  return { db, runtime, transactions, service, keeper, auth, volume, clock, at: (ms: number) => void (clock.now = start + ms), scheduled, eventsOf, appId };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function keeperSuite(name: string, open: (t: TestContext) => Promise<VolumeDriver | null>): void {
  test(`${name}: scheduled snapshots come when due, once after a downtime, keep = 2 keeps the two newest, and a failure is retried after a back-off`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const s = await setup(t, driver, 'snapshot_every = "1h"\nkeep = 2');
    const keeper = s.keeper();
    s.at(30 * M);
    assert.deepEqual((await keeper.runOnce())?.taken, []);
    s.at(61 * M);
    const first = (await keeper.runOnce())?.taken ?? [];
    assert.equal(first.length, 1);
    assert.equal(first[0]?.kind, 'scheduled');
    assert.equal(first[0]?.createdAt.getTime(), s.clock.now, 'taken at the keeper clock');
    assert.equal(first[0]?.sha256, (await treeHash(driver.volumePath(s.volume.id))).sha256);
    assert.deepEqual((await keeper.runOnce())?.taken, [], 'not again in the same period');

    // Nine periods of downtime, and a new keeper (a restarted server): one catch-up snapshot.
    s.at(10 * H);
    const restarted = s.keeper();
    assert.equal((await restarted.runOnce())?.taken.length, 1);
    assert.equal((await restarted.runOnce())?.taken.length, 0);
    s.at(10 * H + 30 * M);
    assert.equal((await restarted.runOnce())?.taken.length, 0, 'the period counts from the catch-up snapshot');
    s.at(11 * H + 1 * M);
    const third = await restarted.runOnce();
    assert.equal(third?.taken.length, 1);
    assert.deepEqual(third?.expired, [first[0]?.id], 'the oldest scheduled snapshot goes');
    const left = await s.scheduled();
    assert.equal(left.length, 2);
    assert.equal(await exists(driver.snapshotPath(first[0]?.id as string)), false, 'its data is gone');
    for (const snap of left) assert.ok(await exists(driver.snapshotPath(snap.id)));
    assert.equal((await s.eventsOf('snapshot.expired')).length, 1);
    assert.equal((await s.eventsOf('snapshot.created')).filter((e) => e.reason === 'scheduled').length, 3);

    // The volume's data vanishes behind Pier's back: the snapshot fails, is recorded, and is
    // retried once the back-off (1 min) has passed, not at every pass.
    await (driver.kind === 'btrfs' ? driver.remove(s.volume.id) : rm(driver.volumePath(s.volume.id), { recursive: true }));
    s.at(12 * H + 2 * M);
    const failed = await restarted.runOnce();
    assert.equal(failed?.failed.length, 1);
    assert.equal(failed?.taken.length, 0);
    const [event] = await s.eventsOf('volume.keeper_failed');
    assert.match(event?.message ?? '', /scheduled snapshot of volume data failed: .*retrying in 60 s/);
    s.at(12 * H + 2 * M + 30_000);
    assert.deepEqual((await restarted.runOnce())?.failed, [], 'not retried before the back-off');
    await driver.create(s.volume.id);
    s.at(12 * H + 3 * M + 1_000);
    assert.equal((await restarted.runOnce())?.taken.length, 1, 'retried once the back-off passed');
  });

  test(`${name}: keep_for expires scheduled snapshots by age; the volumes of a deleted app get a final snapshot, are listed as deleted, then purged with their snapshots`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const s = await setup(t, driver, 'snapshot_every = "1h"\nkeep_for = "150m"');
    const keeper = s.keeper();
    const manual = await s.service.snapshot(s.auth, 'kv', 'data');
    s.at(1 * H + M);
    const [a] = (await keeper.runOnce())?.taken ?? [];
    assert.equal(a?.expiresAt?.getTime(), s.clock.now + 150 * M);
    s.at(2 * H + 2 * M);
    const [b] = (await keeper.runOnce())?.taken ?? [];
    assert.ok(b);
    s.at(3 * H + 32 * M);
    const third = await keeper.runOnce();
    assert.deepEqual(third?.expired, [a?.id]);
    const c = third?.taken[0];
    assert.ok(c, 'the next one is due too');
    assert.deepEqual((await s.scheduled()).map((x) => x.id), [b.id, c.id]);
    assert.equal(await exists(driver.snapshotPath(a?.id as string)), false);
    assert.ok(await exists(driver.snapshotPath(manual.id)), 'a manual snapshot has no expiry');

    const deleter = createAppDeleter({ runtime: s.runtime, transactions: s.transactions, onDeleted: () => {} });
    await deleter.delete(s.auth, 'kv', 0);
    const pass = await keeper.runOnce();
    assert.deepEqual(pass?.retired, [s.volume.id]);
    assert.deepEqual(pass?.taken, [], 'no scheduled snapshot of a deleted app');
    const [listed] = await s.service.list(s.auth, 'kv', true);
    assert.equal(listed?.id, s.volume.id);
    assert.equal(listed?.purgeAfter?.getTime(), s.clock.now + 48 * H);
    assert.equal(await exists(driver.volumePath(s.volume.id)), false, 'the data lives on in the final snapshot only');
    const [final] = await s.db.select().from(snapshots).where(and(eq(snapshots.volumeId, s.volume.id), eq(snapshots.kind, 'final')));
    assert.ok(final);
    assert.equal(final.sha256, manual.sha256, 'the final snapshot holds the data');
    const [kept] = await s.db.select().from(snapshots).where(eq(snapshots.id, manual.id));
    assert.equal(kept?.expiresAt?.getTime(), listed?.purgeAfter?.getTime(), "the app's other snapshots go at the purge too");
    const [event] = await s.eventsOf('volume.deleted');
    assert.equal(event?.reason, 'app-deleted');

    s.at(3 * H + 32 * M + 47 * H);
    const before = await keeper.runOnce();
    assert.deepEqual(before?.purged, []);
    assert.deepEqual(new Set(before?.expired), new Set([b.id, c.id]), 'scheduled snapshots still expire by age, before the purge');
    s.at(3 * H + 33 * M + 48 * H);
    const purge = await keeper.runOnce();
    assert.deepEqual(purge?.purged, [s.volume.id]);
    assert.deepEqual(new Set(purge?.expired), new Set([final.id, manual.id]));
    for (const id of [final.id, manual.id, b.id, c.id]) assert.equal(await exists(driver.snapshotPath(id)), false);
    assert.deepEqual(await s.service.list(s.auth, 'kv', true), []);
    assert.equal((await s.eventsOf('volume.purged')).length, 1);
  });
}

keeperSuite('dir driver', async (t) => openVolumeDriver(await tempRoot(t), 'dir'));
keeperSuite('btrfs driver', async (t) => {
  const mnt = await btrfsLoop(t);
  return mnt ? openVolumeDriver(mnt, 'btrfs') : null;
});

test('a delete whose data removal fails is still a delete: undelete brings the final snapshot back over what was left, and the purge removes the data before the row', async (t) => {
  const real = await openVolumeDriver(await tempRoot(t), 'dir');
  // The root refuses removals while `refuse` is set, as a node's agent that is away for a moment.
  let refuse = true;
  const driver: VolumeDriver = {
    ...real,
    async remove(id) {
      if (refuse) throw Object.assign(new Error('the agent did not answer'), { code: 'E_AGENT_UNREACHABLE' });
      return real.remove(id);
    },
  };
  const s = await setup(t, driver, '');
  const path = real.volumePath(s.volume.id);
  const gone = await s.service.delete(s.auth, 'kv', 'data');
  assert.equal(gone.volume.state, 'deleted');
  assert.equal(await exists(path), true, 'the data is left where it was');
  await writeFile(join(path, 'counter'), 'stale\n');
  // Undelete clears what was left, then restores the final snapshot.
  const back = await s.service.undelete(s.auth, 'kv', 'data').catch((err: Error) => err);
  assert.ok(back instanceof Error, 'with removals refused, undelete cannot clear the leftover and refuses');
  refuse = false;
  const restored = await s.service.undelete(s.auth, 'kv', 'data');
  assert.equal(restored.state, 'ready');
  assert.equal(await readFile(join(path, 'counter'), 'utf8'), '1\n2\n3\n', 'the final snapshot, not the leftover');

  // Deleted again with removals refused; past the purge, the keeper removes the data first, and only then the row.
  refuse = true;
  await s.service.delete(s.auth, 'kv', 'data');
  s.at(49 * H);
  const first = await s.keeper().runOnce();
  assert.deepEqual(first?.purged, [], 'not purged while its data cannot be removed');
  assert.equal(first?.failed.some((f) => f.volumeId === s.volume.id), true);
  refuse = false;
  const second = await s.keeper().runOnce();
  assert.deepEqual(second?.purged, [s.volume.id]);
  assert.equal(await exists(path), false);
});
