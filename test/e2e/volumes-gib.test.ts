// test-pass: once
// The sha256 of 1 GiB of files (16 files of random data, a folder and a symlink) survives every
// path a volume's data takes, end to end on btrfs (a loop file of the test's own, a real
// `pier server` and Docker): the snapshot (Pier's sha256 and the test's own tree hash of it),
// restore into a new volume, restore in place after the data was changed, export to a file ->
// import -> restore, and a move with its instance to another root. PIER_VOLUME_PROOF_MIB sets the
// size (default 1024); the dir driver passes the same paths on small data (volume-drivers,
// volumes-move). Its subject is the data path, not the database: a database-only run
// (PIER_TEST_DATABASE_ONLY=1) leaves it out; CI runs it on Node 22 and on Node 24.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotView, VolumeView } from '../../api/volumes/volume-views.js';
import type { MoveView } from '../../api/volumes/volume-views.js';
import type { StatusView } from '../../api/views.js';
import { treeHash } from '../../api/volumes/tree-hash.js';
import { btrfsLoop } from '../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, pierJson, type PierServer } from '../support/pier-process.js';
import { removeAppContainersAndVolumes } from '../support/containers.js';
import { oneVolumeManifest, waitFor } from '../support/volume-counter.js';

const exec = promisify(execFile);
const MIB = Number(process.env.PIER_VOLUME_PROOF_MIB ?? 1024);
const FILES = 16;

const manifest = (image: string) => oneVolumeManifest({ app: 'gib', image, script: "trap 'exit 0' TERM; while true; do sleep 1; done" });

test(`${MIB} MiB of files keep their sha256 through snapshot, restore (new and in place), export -> import and a move (btrfs)`, async (t) => {
  assert.ok(Number.isInteger(MIB) && MIB >= FILES, `PIER_VOLUME_PROOF_MIB must be a whole number of MiB, at least ${FILES}`);
  if (!(await requireDocker(t))) return;
  let appId: string | null = null;
  let server: PierServer | null = null;
  t.after(async () => {
    await server?.stop();
    if (appId) await removeAppContainersAndVolumes(appId);
  });
  // Room for the volume, the import's copy and the moved copy (snapshots and restores share extents).
  const base = await btrfsLoop(t, `${Math.ceil((MIB * 4) / 1024) + 1}G`);
  if (!base) return;
  const [a, b] = [join(base, 'a'), join(base, 'b')];
  for (const root of [a, b]) await exec('btrfs', ['subvolume', 'create', root]);
  const image = await ensureBusyboxImage();
  const s = await startPierServer(t, { PIER_VOLUMES_DIR: a, PIER_VOLUME_DRIVER: 'btrfs', PIER_VOLUME_ROOTS: `b=${b}` });
  server = s;
  const pier = <T>(args: string[]) => pierJson<T>(s, args);
  const file = join(s.dir, 'pier.toml');
  await writeFile(file, manifest(image));
  const deployed = await runPier(['deploy', '-c', file], s.env);
  assert.equal(deployed.code, 0, `${deployed.stderr}\n${s.stderr().slice(-3000)}`);
  appId = (await pier<StatusView>(['status', '--app', 'gib'])).app.id;
  const volume = (await pier<{ volumes: VolumeView[] }>(['volumes', 'list', '--app', 'gib'])).volumes[0] as VolumeView;
  assert.ok(volume);
  const path = join(a, 'volumes', volume.id);

  // The data: random files, a folder and a symlink, written while the instance runs.
  await mkdir(join(path, 'sub'));
  for (let i = 0; i < FILES; i++) await exec('sh', ['-c', `head -c ${(MIB / FILES) * 1024 * 1024} /dev/urandom > "$1"`, 'write', join(path, i % 2 ? 'sub' : '', `f${i}.bin`)]);
  await symlink('sub/f1.bin', join(path, 'link'));
  const want = await treeHash(path);
  assert.equal(want.bytes, MIB * 1024 * 1024);
  const same = async (where: string, what: string) => assert.deepEqual(await treeHash(where), want, `${what}: the tree's sha256`);

  // 1. Snapshot: Pier's sha256 is the tree's.
  const snap = await pier<SnapshotView>(['volumes', 'snapshot', '--app', 'gib', 'data']);
  assert.equal(snap.sha256, want.sha256, "the snapshot's recorded sha256");
  await same(join(a, 'snapshots', snap.id), 'the snapshot');

  // 2. Restore into a new volume.
  const copy = await pier<{ volume: VolumeView }>(['volumes', 'restore', '--app', 'gib', snap.id, '--name', 'copy']);
  await same(join(a, 'volumes', copy.volume.id), 'restored into a new volume');

  // 3. Restore in place, after a file was removed and another changed.
  await rm(join(path, 'f0.bin'));
  await appendFile(join(path, 'sub', 'f1.bin'), 'changed');
  assert.notEqual((await treeHash(path)).sha256, want.sha256);
  await pier(['volumes', 'restore', '--app', 'gib', snap.id, '--in-place', '--yes']);
  await same(path, 'restored in place');

  // 4. Export to a file, import it, restore the imported snapshot.
  const exported = join(s.dir, 'data.pier-snapshot');
  const out = await pier<{ bytes: number }>(['volumes', 'export', '--app', 'gib', snap.id, '--output', exported]);
  assert.ok(out.bytes > want.bytes);
  const imported = await pier<SnapshotView>(['volumes', 'import', exported, '--app', 'gib']);
  assert.equal(imported.sha256, want.sha256, "the imported snapshot's sha256");
  await rm(exported);
  const back = await pier<{ volume: VolumeView }>(['volumes', 'restore', '--app', 'gib', imported.id, '--name', 'imported']);
  await same(join(a, 'volumes', back.volume.id), 'exported, imported and restored');

  // 5. Move with its instance to root b.
  const moved = await pier<{ volume: VolumeView; move: MoveView }>(['volumes', 'move', '--app', 'gib', 'data', '--to', 'b']);
  t.diagnostic(`move of ${MIB} MiB: ${moved.move.bytesMoved} bytes, downtime ${moved.move.downtimeMs ?? '-'} ms`);
  assert.equal(moved.volume.root, 'b');
  await same(join(b, 'volumes', volume.id), 'moved to another root');
  await waitFor('the instance running on the moved volume', async () => {
    const v = (await pier<{ volumes: VolumeView[] }>(['volumes', 'list', '--app', 'gib'])).volumes.find((x) => x.name === 'data');
    return v?.attachedInstance ? true : null;
  });
});
