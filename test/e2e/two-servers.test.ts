// Two API processes on one PostgreSQL database: both run a scheduler and hear the same Docker
// events, yet an app is reconciled by one of them at a time (Postgres advisory locks), so the
// app never gets more containers than it asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';

const exec = promisify(execFile);

interface Span {
  pid: number;
  begin: number;
  end: number;
}

/** Reconcile spans of one app from a server's debug log. */
function spans(server: PierServer, appId: string): Span[] {
  const out: Span[] = [];
  const open = new Map<number, number>();
  for (const line of server.stderr().split('\n')) {
    if (!line.includes(appId) || !line.includes('reconcile ')) continue;
    const rec = JSON.parse(line) as { msg: string; at: number; pid: number };
    if (rec.msg === 'reconcile begin') open.set(rec.pid, rec.at);
    if (rec.msg === 'reconcile end') out.push({ pid: rec.pid, begin: open.get(rec.pid) ?? rec.at, end: rec.at });
  }
  return out;
}

test('two servers on one database never reconcile the same app at once', async (t) => {
  if (!process.env.DATABASE_URL) {
    t.diagnostic('needs PostgreSQL: the embedded database belongs to one process; runs in the DATABASE_URL pass of .ci/run');
    return;
  }
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const a = await startPierServer(t);
  const b = await startPierServer(t, {}, { databaseUrl: a.databaseUrl, args: ['--role', 'api'] });
  const file = join(a.dir, 'pier.toml');
  const port = 9100 + Math.floor(Math.random() * 800);
  await writeFile(
    file,
    `app = "twin"\nimage = "${image}"\n[processes.echo]\ncmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]\ncount = 3\n[[endpoints]]\nprocess = "echo"\nport = ${port}\ntarget = 8080\n`,
  );
  const deployed = await runPier(['deploy', '-c', file], b.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  const status = JSON.parse((await runPier(['status', '--app', 'twin', '--json'], a.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(status.app.id));

  // Kill containers a few times so both servers hear the events and race to react.
  for (let round = 0; round < 3; round++) {
    const { stdout } = await exec('docker', ['ps', '-q', '--filter', `label=dev.pier.app=${status.app.id}`]);
    const ids = stdout.split('\n').filter(Boolean).slice(0, 2);
    await exec('docker', ['kill', ...ids]);
    await new Promise((r) => setTimeout(r, 3000));
  }
  let running: string[] = [];
  for (let i = 0; i < 40; i++) {
    const { stdout } = await exec('docker', ['ps', '-q', '--filter', `label=dev.pier.app=${status.app.id}`]);
    running = stdout.split('\n').filter(Boolean);
    if (running.length === 3) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.equal(running.length, 3, 'exactly the asked-for count runs');

  const all = [...spans(a, status.app.id), ...spans(b, status.app.id)].sort((x, y) => x.begin - y.begin);
  const pids = new Set(all.map((s) => s.pid));
  assert.equal(pids.size, 2, `both servers reconciled the app (spans: ${all.length})`);
  for (let i = 1; i < all.length; i++) {
    const prev = all[i - 1] as Span;
    const cur = all[i] as Span;
    assert.ok(cur.begin >= prev.end, `reconciles overlap: ${JSON.stringify(prev)} and ${JSON.stringify(cur)}`);
  }
});
