// Volumes end to end: a real `pier server` with its volumes on a btrfs loop file of the test's
// own, real Docker, the real CLI. A writer appends a counter every 10 ms to its volume, resuming
// from the last line: data survives a redeploy that changes one env var (stop-then-start), a
// snapshot taken while it writes restores in place to exactly its data (1..K, no gap), the
// instance stopped before the pre-restore snapshot (nothing written after it), and a volume is
// deleted only when nothing runs on it, then brought back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotView, VolumeDescription, VolumeView } from '../../api/volumes/volume-views.js';
import type { EventView, StatusView } from '../../api/views.js';
import { btrfsLoop } from '../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer, pierJson } from '../support/pier-process.js';
import { COUNTER_WRITER, counter, oneVolumeManifest, waitFor } from '../support/volume-counter.js';
import { removeAppContainersAndVolumes } from '../support/containers.js';

const exec = promisify(execFile);


const manifest = (image: string, version: string) => oneVolumeManifest({ app: 'kv', image, script: COUNTER_WRITER, version });

const pier = pierJson;



test('volumes: data survives a redeploy, a snapshot restores in place gap-free, and delete waits for the instance to stop', async (t) => {
  if (!(await requireDocker(t))) return;
  let appId: string | null = null;
  let server: PierServer | null = null;
  // Registered first, so it runs before the file system is unmounted: the server first (it would
  // start the instance again), then the containers, then the Docker volumes that bind the subvolumes.
  t.after(async () => {
    await server?.stop();
    if (!appId) return;
    await removeAppContainersAndVolumes(appId);
  });
  const t0 = Date.now();
  const mnt = await btrfsLoop(t);
  if (!mnt) return;
  const image = await ensureBusyboxImage();
  server = await startPierServer(t, { PIER_VOLUMES_DIR: mnt });
  const file = join(server.dir, 'pier.toml');
  const logOf = (volumeId: string) => readFile(join(mnt, 'volumes', volumeId, 'log'), 'utf8');

  await writeFile(file, manifest(image, '1'));
  const first = await runPier(['deploy', '-c', file], server.env);
  assert.equal(first.code, 0, `${first.stderr}\n${server.stderr().slice(-3000)}`);
  const status = await pier<StatusView>(server, ['status', '--app', 'kv']);
  appId = status.app.id;
  const { volumes } = await pier<{ volumes: VolumeView[] }>(server, ['volumes', 'list', '--app', 'kv']);
  assert.equal(volumes.length, 1);
  const vol = volumes[0] as VolumeView;
  assert.equal(vol.driver, 'btrfs');
  assert.equal(vol.path, '/data');
  const firstInstance = status.instances.find((i) => i.state === 'running')?.id;
  assert.equal(vol.attachedInstance, firstInstance);
  // Docker sees a local volume bound to the subvolume, labelled as Pier's.
  const inspected = JSON.parse((await exec('docker', ['volume', 'inspect', `pier-${vol.id}`])).stdout) as { Labels: Record<string, string>; Options: Record<string, string> }[];
  assert.equal(inspected[0]?.Labels['dev.pier.managed'], 'true');
  assert.equal(inspected[0]?.Options.device, join(mnt, 'volumes', vol.id));

  t.diagnostic(`deployed at ${Date.now() - t0} ms`);
  const before = await waitFor('the writer to write 30 lines', async () => {
    const n = counter(await logOf(vol.id), 'before the redeploy');
    return n >= 30 ? n : null;
  }, 200);

  // The Redis story: one env var changes, the data stays; the old instance stopped before the new one started.
  await writeFile(file, manifest(image, '2'));
  const second = await runPier(['deploy', '-c', file], server.env);
  assert.equal(second.code, 0, `${second.stderr}\n${server.stderr().slice(-3000)}`);
  const after = await waitFor('the new instance to write on', async () => {
    const n = counter(await logOf(vol.id), 'after the redeploy');
    return n > before + 10 ? n : null;
  }, 200);
  assert.ok(after > before);
  const events = await pier<EventView[]>(server, ['events', '--app', 'kv']);
  const stopped = events.find((e) => e.type === 'instance.stopped' && e.instance === firstInstance);
  const started = events.filter((e) => e.type === 'instance.started');
  assert.ok(stopped, 'the first instance stopped');
  assert.equal(started.length, 2);
  assert.ok(stopped.id < (started[1] as EventView).id, 'stop-then-start: the old instance stopped before the new one started');

  t.diagnostic(`redeployed at ${Date.now() - t0} ms`);
  // Delete is refused while the instance runs on it.
  const refused = await runPier(['volumes', 'delete', '--app', 'kv', 'data', '--yes'], server.env);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /E_VOLUME_ATTACHED/);

  // A snapshot while it writes (crash-consistent: a btrfs snapshot is one point in time).
  const snap = await pier<SnapshotView>(server, ['volumes', 'snapshot', '--app', 'kv', 'data']);
  assert.match(snap.id, /^snap_/);
  const snapLines = counter(await readFile(join(mnt, 'snapshots', snap.id, 'log'), 'utf8'), 'the snapshot');
  assert.ok(snapLines >= after, `the snapshot holds ${snapLines} lines, and ${after} were read from the volume before it was taken (snapshot ${snap.id}, ${snap.consistency})`);
  const listed = await pier<{ snapshots: SnapshotView[] }>(server, ['snapshots', 'list', '--app', 'kv']);
  assert.equal(listed.snapshots[0]?.id, snap.id);
  assert.match(listed.snapshots[0]?.sha256 ?? '', /^[0-9a-f]{64}$/);
  await waitFor('more lines after the snapshot', async () => (counter(await logOf(vol.id), 'after the snapshot') > snapLines + 10 ? true : null));

  // Restore in place: stop, pre-restore snapshot, swap, start; the writer goes on from the snapshot's last line.
  const holder = (await pier<VolumeDescription>(server, ['volumes', 'describe', '--app', 'kv', 'data'])).volume.attachedInstance as string;
  const restored = await pier<{ volume: VolumeView; preRestoreSnapshot: SnapshotView }>(server, ['volumes', 'restore', '--app', 'kv', snap.id, '--in-place', '--yes']);
  t.diagnostic(`restored at ${Date.now() - t0} ms`);
  const pre = restored.preRestoreSnapshot;
  assert.equal(pre.kind, 'pre-restore');
  assert.equal(pre.consistency, 'stopped');
  const preLines = counter(await readFile(join(mnt, 'snapshots', pre.id, 'log'), 'utf8'), 'the pre-restore snapshot');
  assert.ok(preLines > snapLines + 10);
  // Stop first, then snapshot: the old container had ended before the pre-restore snapshot was taken.
  const old = JSON.parse((await exec('docker', ['inspect', holder])).stdout) as { State: { Running: boolean; FinishedAt: string } }[];
  assert.equal(old[0]?.State.Running, false);
  assert.ok(new Date(old[0]?.State.FinishedAt as string) <= new Date(pre.createdAt), 'the writer stopped before the pre-restore snapshot');

  const snapText = await readFile(join(mnt, 'snapshots', snap.id, 'log'), 'utf8');
  const resumed = await waitFor('the restarted writer to write on from the snapshot', async () => {
    const text = await logOf(vol.id);
    return counter(text, 'after the restore') > snapLines + 5 ? text : null;
  }, 200);
  assert.ok(resumed.startsWith(snapText), "the restored volume starts with exactly the snapshot's data");
  // The writer started again on exactly the snapshot's data: it resumed from its last line, not the pre-restore one.
  const starts = (await readFile(join(mnt, 'volumes', vol.id, 'starts'), 'utf8')).trim().split('\n');
  assert.equal(starts.length, 3, starts.join(', '));
  assert.equal(starts[0], 'start 0');
  assert.ok(Number(starts[1]?.split(' ')[1]) >= before, 'the redeployed writer resumed from the data it found');
  assert.equal(starts[2], `start ${snapLines}`);

  t.diagnostic(`resumed at ${Date.now() - t0} ms`);
  // Once its process runs no instance, the volume can be deleted (final snapshot) and brought back.
  const scaled = await runPier(['scale', 'db=0', '--app', 'kv'], server.env);
  assert.equal(scaled.code, 0, scaled.stderr);
  const gone = await waitFor('the volume to be deleted', async () => {
    const r = await runPier(['volumes', 'delete', '--app', 'kv', 'data', '--yes', '--json'], server.env);
    return r.code === 0 ? (JSON.parse(r.stdout) as { volume: VolumeView; finalSnapshot: SnapshotView }) : null;
  }, 200);
  t.diagnostic(`deleted at ${Date.now() - t0} ms`);
  assert.equal(gone.finalSnapshot.kind, 'final');
  assert.ok(gone.volume.purgeAfter);
  const finalLines = counter(await readFile(join(mnt, 'snapshots', gone.finalSnapshot.id, 'log'), 'utf8'), 'the final snapshot');
  assert.equal((await pier<{ volumes: VolumeView[] }>(server, ['volumes', 'list', '--app', 'kv'])).volumes.length, 0);
  const back = await pier<{ volume: VolumeView }>(server, ['volumes', 'undelete', '--app', 'kv', 'data']);
  assert.equal(back.volume.id, vol.id);
  assert.equal(counter(await logOf(vol.id), 'after undelete'), finalLines);
});
