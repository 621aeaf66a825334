// The one suite every volume driver passes (dir and btrfs): create, snapshot, restore into a new
// volume, restore in place, stage and adopt, remove. Data is compared by tree hash.
import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { createBtrfsDriver } from '../../../api/volumes/drivers/btrfs-driver.js';
import { createDirDriver } from '../../../api/volumes/drivers/dir-driver.js';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { VolumeDriver } from '../../../api/volumes/volume-driver.js';
import { transferSnapshot } from '../../../api/volumes/volume-transfer.js';

export function volumeDriverContract(name: string, open: (t: TestContext) => Promise<VolumeDriver | null>): void {
  test(`${name}: a snapshot sent to another root arrives whole (btrfs: the second send is a delta); a truncated stream leaves no snapshot there`, async (t) => {
    const a = await open(t);
    const b = await open(t);
    if (!a || !b) return;
    const path = await a.create('vol_m');
    await writeFile(join(path, 'big'), Buffer.alloc(200_000, 3));
    await writeFile(join(path, 'log'), '1\n');
    await a.snapshot('vol_m', 'move_1-pre');
    const full = await transferSnapshot(a, b, 'move_1-pre', null);
    assert.ok(full > 200_000);
    assert.deepEqual(await treeHash(b.snapshotPath('move_1-pre')), await treeHash(a.snapshotPath('move_1-pre')));
    assert.equal(await b.receivedFingerprint('move_1-pre'), await a.fingerprint('move_1-pre'));

    await appendFile(join(path, 'log'), '2\n');
    await a.snapshot('vol_m', 'move_1-final');
    const delta = await transferSnapshot(a, b, 'move_1-final', 'move_1-pre');
    if (a.kind === 'btrfs') assert.ok(delta < full / 10, `the second send is a delta (${delta} of ${full} bytes)`);
    const sent = await treeHash(a.snapshotPath('move_1-final'));
    assert.deepEqual(await treeHash(b.snapshotPath('move_1-final')), sent);
    assert.equal(await b.receivedFingerprint('move_1-final'), await a.fingerprint('move_1-final'));
    assert.deepEqual(await treeHash(await b.restore('move_1-final', 'vol_m')), sent);

    await appendFile(join(path, 'log'), '3\n');
    await a.snapshot('vol_m', 'move_2-final');
    const before = await treeHash(a.snapshotPath('move_2-final'));
    await assert.rejects(transferSnapshot(a, b, 'move_2-final', a.kind === 'btrfs' ? 'move_1-final' : null, { truncateAt: 64 }), { code: 'E_VOLUME_DRIVER' });
    assert.equal(await b.receivedFingerprint('move_2-final'), null, 'no whole snapshot on the receiving root');
    assert.deepEqual(await treeHash(a.snapshotPath('move_2-final')), before, 'the source snapshot is intact');
    await b.removeSnapshot('move_2-final');
  });

  test(`${name}: flush writes the root out (a move calls it before its cutover); a root that is gone gives E_VOLUME_DRIVER`, async (t) => {
    const a = await open(t);
    if (!a) return;
    const path = await a.create('vol_f');
    await writeFile(join(path, 'data'), Buffer.alloc(100_000, 7));
    await a.flush();
    assert.equal((await readFile(join(path, 'data'))).length, 100_000);
    const gone = (a.kind === 'btrfs' ? createBtrfsDriver : createDirDriver)(join(a.root, 'no-such-root'));
    await assert.rejects(gone.flush(), { code: 'E_VOLUME_DRIVER' });
  });

  test(`${name}: a snapshot keeps the data as it was, and restores into a new volume with the same sha256`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const path = await driver.create('vol_a');
    assert.equal(path, driver.volumePath('vol_a'));
    assert.ok(await driver.exists('vol_a'));
    await mkdir(join(path, 'sub'));
    await writeFile(join(path, 'sub', 'f.txt'), 'one\n');
    await writeFile(join(path, 'g.bin'), Buffer.alloc(70_000, 7));
    const before = await treeHash(path);
    await driver.snapshot('vol_a', 'snap_1');
    await appendFile(join(path, 'sub', 'f.txt'), 'two\n');
    assert.deepEqual(await treeHash(driver.snapshotPath('snap_1')), before);
    assert.notEqual((await treeHash(path)).sha256, before.sha256);

    const restored = await driver.restore('snap_1', 'vol_b');
    assert.deepEqual(await treeHash(restored), before);
    // The restored volume is writable and independent of the snapshot.
    await writeFile(join(restored, 'new'), 'x');
    assert.deepEqual(await treeHash(driver.snapshotPath('snap_1')), before);
  });

  test(`${name}: restore in place swaps the data and leaves other snapshots alone`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const path = await driver.create('vol_c');
    await writeFile(join(path, 'log'), '1\n2\n');
    await driver.snapshot('vol_c', 'snap_old');
    await appendFile(join(path, 'log'), '3\n');
    await driver.snapshot('vol_c', 'snap_new');
    await driver.replace('vol_c', 'snap_old');
    assert.equal(await readFile(join(driver.volumePath('vol_c'), 'log'), 'utf8'), '1\n2\n');
    assert.equal(await readFile(join(driver.snapshotPath('snap_new'), 'log'), 'utf8'), '1\n2\n3\n');
    await driver.removeSnapshot('snap_new');
    await driver.removeSnapshot('snap_new');
    await driver.remove('vol_c');
    await driver.remove('vol_c');
    assert.equal(await driver.exists('vol_c'), false);
  });

  test(`${name}: a staged directory becomes a snapshot`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const staged = await driver.staging('imp_1');
    await writeFile(join(staged, 'a'), 'imported');
    const hash = await treeHash(staged);
    await driver.adopt(staged, 'snap_imp');
    assert.deepEqual(await treeHash(driver.snapshotPath('snap_imp')), hash);
    const restored = await driver.restore('snap_imp', 'vol_imp');
    assert.equal(await readFile(join(restored, 'a'), 'utf8'), 'imported');
  });
}
