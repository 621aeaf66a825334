// The one suite every volume driver passes (dir and btrfs): create, snapshot, restore into a new
// volume, restore in place, stage and adopt, remove. Data is compared by tree hash.
import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type TestContext } from 'node:test';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { VolumeDriver } from '../../../api/volumes/volume-driver.js';

export function volumeDriverContract(name: string, open: (t: TestContext) => Promise<VolumeDriver | null>): void {
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
