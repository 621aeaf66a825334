// `pier doctor` on this host: with a running server every check passes or only warns (exit 0);
// with the engine's socket pointing nowhere, or an open-files limit too low for an edge, it
// fails (exit 1) and says how to fix it. The low limit is set on the doctor's own process
// with util-linux's prlimit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer } from '../support/pier-process.js';

interface Doctor {
  ok: boolean;
  checks: { name: string; status: string; message: string; fix?: string }[];
}

function parse(stdout: string): Doctor {
  return JSON.parse(stdout) as Doctor;
}

test('pier doctor passes on a healthy host, and fails with the fix when the engine is gone or the open-files limit is too low', async (t) => {
  if (!(await requireDocker(t))) return;
  const server = await startPierServer(t);

  const healthy = await runPier(['doctor', '--json'], server.env);
  const report = parse(healthy.stdout);
  const byName = new Map(report.checks.map((c) => [c.name, c]));
  assert.equal(healthy.code, 0, JSON.stringify(report.checks.filter((c) => c.status === 'fail')));
  assert.equal(report.ok, true);
  for (const name of ['node', 'docker', 'database', 'data folder', 'server']) assert.equal(byName.get(name)?.status, 'ok', `${name}: ${JSON.stringify(byName.get(name))}`);
  assert.match(byName.get('docker')?.message ?? '', /Docker Engine \d+\.\d+/);
  assert.ok(byName.has('open files') && byName.has('ipv6 loopback') && byName.has('edge listeners'));

  // The engine is not where DOCKER_HOST says.
  const gone = await runPier(['doctor', '--json'], { ...server.env, DOCKER_HOST: `unix://${join(server.dir, 'no-such.sock')}` });
  assert.equal(gone.code, 1);
  const docker = parse(gone.stdout).checks.find((c) => c.name === 'docker');
  assert.equal(docker?.status, 'fail');
  assert.match(docker?.fix ?? '', /start the Docker engine/);

  // The text form says the same, with the fix.
  const text = await runPier(['doctor'], { ...server.env, DOCKER_HOST: `unix://${join(server.dir, 'no-such.sock')}` });
  assert.equal(text.code, 1);
  assert.match(text.stdout, /docker\s+fail/);
  assert.match(text.stdout, /TO FIX/);

  if (!existsSync('/usr/bin/prlimit')) {
    t.diagnostic('prlimit (util-linux) is missing: the open-files case is not run');
    return;
  }
  const low = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn('/usr/bin/prlimit', ['--nofile=256:256', '--', process.execPath, PIER_BIN, 'doctor', '--json'], { env: server.env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: out });
    });
  });
  assert.equal(low.code, 1);
  const files = parse(low.stdout).checks.find((c) => c.name === 'open files');
  assert.equal(files?.status, 'fail');
  assert.match(files?.message ?? '', /limit is 256/);
  assert.match(files?.fix ?? '', /LimitNOFILE/);
});
