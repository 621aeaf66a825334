// Volumes end to end on both drivers (btrfs on a loop file of the test's own; dir on a temp folder,
// small data): a writer appends a counter every 10 ms; a snapshot taken while it writes goes
// through export -> import -> restore into a new volume and holds exactly 1..N, equal to the
// snapshot; then the app is deleted, and its volumes are not left behind silently: the keeper
// stops nothing early, takes a final snapshot once the instance is gone (gap-free, with everything
// the writer wrote: it was stopped first), and `pier volumes list --deleted` shows them.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotView, VolumeView } from '../../api/volumes/volume-views.js';
import type { EventView, StatusView } from '../../api/views.js';
import { btrfsLoop, tempRoot } from '../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { counter, waitFor } from '../support/volume-counter.js';
import { removeAppContainersAndVolumes } from '../support/containers.js';

const exec = promisify(execFile);

const WRITER = "trap 'exit 0' TERM; i=$(tail -n 1 /data/log 2>/dev/null); i=${i:-0}; while true; do i=$((i+1)); echo $i >> /data/log; usleep 10000; done";

const manifest = (image: string) => `
app = "kv"
image = "${image}"

[processes.db]
cmd = ["sh", "-c", ${JSON.stringify(WRITER)}]

[[volumes]]
name = "data"
process = "db"
path = "/data"
snapshot_every = "24h"
keep = 3

[deploy]
drain = "100ms"
timeout = "60s"
`;



async function lifecycle(t: TestContext, driver: 'btrfs' | 'dir'): Promise<void> {
  if (!(await requireDocker(t))) return;
  let appId: string | null = null;
  let server: PierServer | null = null;
  // Registered first, so it runs before the file system is unmounted.
  t.after(async () => {
    await server?.stop();
    if (!appId) return;
    await removeAppContainersAndVolumes(appId);
  });
  const root = driver === 'btrfs' ? await btrfsLoop(t) : await tempRoot(t);
  if (!root) return;
  const t0 = Date.now();
  const image = await ensureBusyboxImage();
  const s = await startPierServer(t, { PIER_VOLUMES_DIR: root, PIER_VOLUME_DRIVER: driver, PIER_VOLUME_KEEPER_INTERVAL: '1s' });
  server = s;
  async function pier<T>(args: string[]): Promise<T> {
    const r = await runPier([...args, '--json'], s.env);
    assert.equal(r.code, 0, `pier ${args.join(' ')}: ${r.stderr}\nserver log:\n${s.stderr().slice(-2000)}`);
    return JSON.parse(r.stdout) as T;
  }
  const file = join(s.dir, 'pier.toml');
  await writeFile(file, manifest(image));
  const deployed = await runPier(['deploy', '-c', file], s.env);
  assert.equal(deployed.code, 0, `${deployed.stderr}\n${s.stderr().slice(-3000)}`);
  t.diagnostic(`deployed at ${Date.now() - t0} ms`);
  appId = (await pier<StatusView>(['status', '--app', 'kv'])).app.id;
  const [vol] = (await pier<{ volumes: VolumeView[] }>(['volumes', 'list', '--app', 'kv'])).volumes;
  assert.ok(vol);
  assert.equal(vol.driver, driver);
  const logOf = (dir: string, id: string) => readFile(join(root, dir, id, 'log'), 'utf8');
  await waitFor('30 lines', async () => (counter(await logOf('volumes', vol.id), 'the volume') >= 30 ? true : null));

  t.diagnostic(`30 lines at ${Date.now() - t0} ms`);
  // A snapshot while it writes (btrfs: one point in time; dir: taken paused).
  const snap = await pier<SnapshotView>(['volumes', 'snapshot', '--app', 'kv', 'data']);
  assert.equal(snap.consistency, driver === 'btrfs' ? 'none' : 'paused');
  const snapText = await logOf('snapshots', snap.id);
  const n = counter(snapText, 'the snapshot');
  assert.ok(n >= 30);

  t.diagnostic(`snapshot at ${Date.now() - t0} ms`);
  // Export -> import -> restore into a new volume: exactly 1..N, equal to the snapshot.
  const exported = join(s.dir, 'data.pier-snapshot');
  await pier(['volumes', 'export', '--app', 'kv', snap.id, '-o', exported]);
  const imported = await pier<SnapshotView>(['volumes', 'import', '--app', 'kv', exported]);
  assert.notEqual(imported.id, snap.id);
  assert.equal(imported.sha256, snap.sha256);
  const { volume: copy } = await pier<{ volume: VolumeView }>(['volumes', 'restore', '--app', 'kv', imported.id, '--name', 'copy']);
  const copyText = await logOf('volumes', copy.id);
  assert.equal(counter(copyText, 'the imported copy'), n);
  assert.equal(copyText, snapText, "the imported copy equals the snapshot's data");

  t.diagnostic(`restored at ${Date.now() - t0} ms`);
  // Deleting the app leaves no volume behind silently.
  const deleted = await runPier(['apps', 'delete', 'kv', '--yes'], s.env);
  assert.equal(deleted.code, 0, deleted.stderr);
  t.diagnostic(`app deleted at ${Date.now() - t0} ms`);
  const gone = await waitFor('both volumes listed as deleted', async () => {
    const { volumes } = await pier<{ volumes: VolumeView[] }>(['volumes', 'list', '--app', 'kv', '--deleted']);
    return volumes.length === 2 ? volumes : null;
  });
  assert.deepEqual(gone.map((v) => v.name).sort(), ['copy', 'data']);
  for (const v of gone) assert.ok(v.purgeAfter && Date.parse(v.purgeAfter) > Date.now() + 47 * 3_600_000, 'kept for the undelete window (48 h)');
  t.diagnostic(`listed deleted at ${Date.now() - t0} ms`);
  const events = await pier<EventView[]>(['events', '--app', 'kv', '--deleted']);
  const dataDeleted = events.find((e) => e.type === 'volume.deleted' && e.data.volumeId === vol.id);
  assert.equal(dataDeleted?.reason, 'app-deleted');
  const finalId = dataDeleted?.data.snapshotId as string;
  const finalCreated = events.find((e) => e.type === 'snapshot.created' && e.data.snapshotId === finalId);
  assert.equal(finalCreated?.data.consistency, 'stopped', 'the writer was stopped before the final snapshot');
  const finalText = await logOf('snapshots', finalId);
  assert.ok(counter(finalText, 'the final snapshot') > n);
  assert.ok(finalText.startsWith(snapText), 'the final snapshot continues the earlier one');
  const h = await exec('ls', [join(root, 'volumes')]);
  assert.ok(!h.stdout.includes(vol.id), 'the volume itself is gone; its data is in the final snapshot');
}

test('volumes on btrfs: a snapshot survives export -> import gap-free, and a deleted app leaves its volumes as deleted with a final snapshot', (t) => lifecycle(t, 'btrfs'));
test('volumes on the dir driver: the same proofs with small data', (t) => lifecycle(t, 'dir'));
