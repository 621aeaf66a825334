// The one suite every volume driver passes (dir and btrfs, and each of them behind a node agent):
// create, snapshot, restore into a new volume, restore in place, stage and adopt, remove, send and
// receive, and the reads of the data where it is (usage, tree hash, a snapshot exported as a
// portable file and imported). Data is compared by tree hash, computed here on the files (the
// test's roots are all on this machine) against what the driver says.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import test, { type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { createBtrfsDriver } from '../../../api/volumes/drivers/btrfs-driver.js';
import { createDirDriver } from '../../../api/volumes/drivers/dir-driver.js';
import type { HostStream } from '../../../api/volumes/host-stream.js';
import { treeHash } from '../../../api/volumes/tree-hash.js';
import type { ArchivedSnapshot, VolumeDriver } from '../../../api/volumes/volume-driver.js';
import { transferSnapshot } from '../../../api/volumes/volume-transfer.js';

const exec = promisify(execFile);

/** What `du -sb` says of a folder, run here. */
async function du(path: string): Promise<number> {
  return Number((await exec('du', ['-sb', path])).stdout.split('\t')[0]);
}

/** A streamed file read whole; rejects with the stream's (or the tool's) error. */
async function collect(file: HostStream<Readable>): Promise<Buffer> {
  file.done.catch(() => undefined); // awaited below, once the stream is read
  const chunks: Buffer[] = [];
  for await (const chunk of file.stream) chunks.push(chunk as Buffer);
  await file.done;
  return Buffer.concat(chunks);
}

/** A file as an upload would bring it: in 64 KiB pieces. */
function pieces(file: Buffer): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < file.length; at += 65_536) parts.push(file.subarray(at, at + 65_536));
  return Readable.from(parts);
}

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

  test(`${name}: usage and tree hash are read where the data is and match the files; data that is gone is E_VOLUME_MISSING`, async (t) => {
    const driver = await open(t);
    if (!driver) return;
    const path = await driver.create('vol_u');
    await mkdir(join(path, 'd'));
    await writeFile(join(path, 'd', 'x.bin'), Buffer.alloc(123_456, 1));
    await writeFile(join(path, 'y.txt'), 'y\n');
    await symlink('y.txt', join(path, 'link'));
    await driver.snapshot('vol_u', 'snap_u');
    await appendFile(join(path, 'y.txt'), 'z\n');

    const volume = await driver.treeHash({ volume: 'vol_u' });
    const snapshot = await driver.treeHash({ snapshot: 'snap_u' });
    assert.deepEqual(volume, await treeHash(path));
    assert.deepEqual(snapshot, await treeHash(driver.snapshotPath('snap_u')));
    assert.equal(snapshot.files, 2);
    assert.equal(snapshot.bytes, 123_456 + 2);
    assert.notEqual(volume.sha256, snapshot.sha256, 'the volume was written after the snapshot');

    assert.equal(await driver.usage({ volume: 'vol_u' }), await du(path));
    assert.equal(await driver.usage({ snapshot: 'snap_u' }), await du(driver.snapshotPath('snap_u')));
    assert.ok((await driver.usage({ snapshot: 'snap_u' })) >= 123_456 + 2);

    for (const gone of [{ volume: 'vol_none' }, { snapshot: 'snap_none' }]) {
      await assert.rejects(driver.treeHash(gone), { code: 'E_VOLUME_MISSING' }, JSON.stringify(gone));
      await assert.rejects(driver.usage(gone), { code: 'E_VOLUME_MISSING' }, JSON.stringify(gone));
    }
  });

  test(`${name}: a snapshot exported as a portable file imports into another root with the same tree hash; a truncated, damaged or mislabelled file is E_SNAPSHOT_CORRUPT and leaves nothing`, async (t) => {
    const a = await open(t);
    const b = await open(t);
    if (!a || !b) return;
    const path = await a.create('vol_e');
    await mkdir(join(path, 'sub'));
    await writeFile(join(path, 'sub', 'big.bin'), Buffer.alloc(300_000, 4));
    await writeFile(join(path, 'log'), '1\n2\n3\n');
    await a.snapshot('vol_e', 'snap_e');
    const tree = await treeHash(a.snapshotPath('snap_e'));
    const header: ArchivedSnapshot = { id: 'snap_e', volume: 'data', sha256: tree.sha256, bytes: tree.bytes, files: tree.files, createdAt: new Date().toISOString() };

    const file = await collect(a.exportSnapshot('snap_e', header));
    assert.ok(file.subarray(0, 16).toString('latin1').startsWith('PIER-SNAPSHOT/2 '));
    assert.match(file.subarray(file.length - 91).toString('latin1'), /^PIER-END \d{16} [0-9a-f]{64}\n$/);
    assert.ok(file.length > 300_000);

    const imported = await b.importSnapshot('snap_e2', pieces(file));
    assert.deepEqual(imported, { volumeName: 'data', sha256: tree.sha256, bytes: tree.bytes, files: tree.files });
    assert.deepEqual(await treeHash(b.snapshotPath('snap_e2')), tree);
    assert.deepEqual(await treeHash(await b.restore('snap_e2', 'vol_e2')), tree, 'the imported snapshot restores to the same files');

    const lying = await collect(a.exportSnapshot('snap_e', { ...header, sha256: 'f'.repeat(64) }));
    const refusals: [string, Buffer][] = [
      ['truncated', file.subarray(0, file.length - 1000)],
      ['damaged', Buffer.concat([file.subarray(0, 5000), Buffer.from([file[5000]! ^ 0xff]), file.subarray(5001)])],
      ['its files unlike its header', lying],
    ];
    for (const [what, bytes] of refusals) {
      await assert.rejects(b.importSnapshot('snap_bad', pieces(bytes)), { code: 'E_SNAPSHOT_CORRUPT' }, what);
      await assert.rejects(b.treeHash({ snapshot: 'snap_bad' }), { code: 'E_VOLUME_MISSING' }, `${what}: no snapshot`);
      assert.deepEqual(await readdir(join(b.root, 'staging')), [], `${what}: nothing staged is left`);
    }
    await assert.rejects(collect(a.exportSnapshot('snap_none', header)), { code: 'E_VOLUME_DRIVER' }, 'the export of a snapshot that is not there fails');
  });
}
