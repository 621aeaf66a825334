// PostgreSQL on a Pier volume (btrfs on a loop file of the test's own; image built from Debian's
// PostgreSQL 15 binaries): a writer inserts rows one transaction at a time and, after each commit
// is acknowledged, appends its number to /data/acked. A crash-consistent snapshot taken while it
// writes (consistency = "none": no pause, no hook) is restored into a new volume; PostgreSQL
// starts on it cleanly (crash recovery, then ready), and every row the snapshot's acked file
// lists — acknowledged before the snapshot — is in the table.
// test-pass: once — the PostgreSQL under test runs in a container on a volume, not as Pier's database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SnapshotView, VolumeView } from '../../api/volumes/volume-views.js';
import type { StatusView } from '../../api/views.js';
import { btrfsLoop } from '../support/btrfs-loop.js';
import { requireDocker } from '../support/images.js';
import { ensurePostgresImage, postgresImageProblem } from '../support/postgres-image.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';

const exec = promisify(execFile);

const PSQL = 'psql -h /tmp -U postgres -qAt';
const WRITER = `pg-run & i=$(tail -n 1 /data/acked 2>/dev/null); i=\${i:-0}; until ${PSQL} -c 'select 1' > /dev/null 2>&1; do usleep 100000; done; ${PSQL} -c 'create table if not exists t (n int primary key)'; while true; do i=$((i+1)); ${PSQL} -c "insert into t values ($i)" && echo $i >> /data/acked; done`;

async function waitFor<T>(what: string, probe: () => Promise<T | null>, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`gave up waiting for ${what}`);
}

test('PostgreSQL on a volume: rows acknowledged before a crash-consistent snapshot are all there after a restore, and it starts cleanly', async (t) => {
  if (!(await requireDocker(t))) return;
  const problem = postgresImageProblem();
  if (problem) return t.skip(problem);
  let appId: string | null = null;
  let server: PierServer | null = null;
  const label = `dev.pier.test=pg-restore-${process.pid}`;
  t.after(async () => {
    await server?.stop();
    const ids = [
      ...(appId ? (await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`])).stdout.split('\n') : []),
      ...(await exec('docker', ['ps', '-aq', '--filter', `label=${label}`])).stdout.split('\n'),
    ].filter(Boolean);
    if (ids.length) await exec('docker', ['rm', '-f', ...ids]);
    if (!appId) return;
    const vols = (await exec('docker', ['volume', 'ls', '-q', '--filter', `label=dev.pier.app=${appId}`])).stdout.split('\n').filter(Boolean);
    if (vols.length) await exec('docker', ['volume', 'rm', ...vols]);
  });
  const root = await btrfsLoop(t, '512M');
  if (!root) return;
  const image = await ensurePostgresImage();
  const s = await startPierServer(t, { PIER_VOLUMES_DIR: root });
  server = s;
  async function pier<T>(args: string[]): Promise<T> {
    const r = await runPier([...args, '--json'], s.env);
    assert.equal(r.code, 0, `pier ${args.join(' ')}: ${r.stderr}\nserver log:\n${s.stderr().slice(-2000)}`);
    return JSON.parse(r.stdout) as T;
  }
  const file = join(s.dir, 'pier.toml');
  await writeFile(
    file,
    `app = "pg"\nimage = "${image}"\n\n[processes.db]\ncmd = ["sh", "-c", ${JSON.stringify(WRITER)}]\n\n[[volumes]]\nname = "data"\nprocess = "db"\npath = "/data"\nconsistency = "none"\n\n[deploy]\ntimeout = "120s"\n`,
  );
  const deployed = await runPier(['deploy', '-c', file], s.env);
  assert.equal(deployed.code, 0, `${deployed.stderr}\n${s.stderr().slice(-3000)}`);
  appId = (await pier<StatusView>(['status', '--app', 'pg'])).app.id;
  const [vol] = (await pier<{ volumes: VolumeView[] }>(['volumes', 'list', '--app', 'pg'])).volumes;
  assert.ok(vol);
  const acked = (dir: string) => readFile(join(dir, 'acked'), 'utf8').then((text) => text.split('\n').filter(Boolean));
  await waitFor('50 acknowledged rows', async () => ((await acked(join(root, 'volumes', vol.id))).length >= 50 ? true : null));

  const snap = await pier<SnapshotView>(['volumes', 'snapshot', '--app', 'pg', 'data']);
  assert.equal(snap.consistency, 'none', 'crash-consistent: nothing paused, no hook');
  const before = await acked(join(root, 'snapshots', snap.id));
  before.forEach((n, i) => assert.equal(n, String(i + 1), `acked line ${i + 1}`));
  const { volume: copy } = await pier<{ volume: VolumeView }>(['volumes', 'restore', '--app', 'pg', snap.id, '--name', 'copy']);

  // PostgreSQL on the restored copy, beside the app (its own container, the copy bind-mounted).
  const { stdout } = await exec('docker', ['run', '-d', '--label', label, '-v', `${join(root, 'volumes', copy.id)}:/data`, image]);
  const container = stdout.trim();
  const rows = await waitFor('PostgreSQL on the copy to answer', async () => {
    const r = await exec('docker', ['exec', container, 'sh', '-c', `${PSQL} -c 'select count(*), coalesce(max(n), 0) from t where n <= ${before.length}'`]);
    return r.stdout.trim();
  });
  assert.equal(rows, `${before.length}|${before.length}`, `every one of the ${before.length} acknowledged rows is there`);
  const logs = await exec('docker', ['logs', container]);
  const text = logs.stdout + logs.stderr;
  assert.match(text, /database system was interrupted|not properly shut down|automatic recovery in progress/, 'it recovered from a crash-consistent copy');
  assert.match(text, /database system is ready to accept connections/);
  assert.doesNotMatch(text, /PANIC|FATAL:\s+could not/);
});
