// The walking skeleton, end to end: a real `pier server` (embedded PGlite, or PostgreSQL when
// DATABASE_URL is set), real Docker, the real CLI, and bytes through the edge on IPv4 and IPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EventView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { exchange } from '../support/tcp-client.js';

const exec = promisify(execFile);

const manifest = (image: string, port: number) => `
app = "echo"
image = "${image}"

[processes.echo]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"]
count = 2

[[endpoints]]
process = "echo"
port = ${port}
target = 8080
proxy_protocol = "none"
`;

async function status(server: PierServer): Promise<StatusView> {
  const r = await runPier(['status', '--app', 'echo', '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusView;
}

/** Polls `pier status` until `check` holds (bounded: 60 tries, 500 ms apart). */
async function waitForStatus(server: PierServer, what: string, check: (s: StatusView) => boolean): Promise<StatusView> {
  let last: StatusView | undefined;
  for (let i = 0; i < 60; i++) {
    last = await status(server);
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`gave up waiting for ${what}; last status:\n${JSON.stringify(last, null, 2)}`);
}

/** Echo through the edge; the busybox nc may take a moment to listen after its container starts. */
async function echoThrough(host: string, port: number, payload: string): Promise<string> {
  let lastError: unknown;
  for (let i = 0; i < 20; i++) {
    try {
      const reply = (await exchange(host, port, payload)).toString();
      if (reply === payload) return reply;
      lastError = new Error(`got ${JSON.stringify(reply)}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw lastError;
}

test('a manifest deploys two echo instances that answer through the edge on IPv4 and IPv6, and a killed one is replaced', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const file = join(server.dir, 'pier.toml');
  await writeFile(file, manifest(image, 9000));

  const deploy = await runPier(['deploy', '-c', file], server.env);
  assert.equal(deploy.code, 0, `deploy failed:\n${deploy.stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  assert.match(deploy.stderr, /release v1/);

  const running = await status(server);
  t.after(() => removeAppContainers(running.app.id));
  const live = running.instances.filter((i) => i.state === 'running');
  assert.equal(live.length, 2, JSON.stringify(running.instances));
  assert.equal(running.deployment?.state, 'succeeded');
  assert.deepEqual(running.endpoints[0]?.addresses, ['127.0.0.1:9000', '[::1]:9000']);

  assert.equal(await echoThrough('127.0.0.1', 9000, 'hello over IPv4\n'), 'hello over IPv4\n');
  assert.equal(await echoThrough('::1', 9000, 'hello over IPv6\n'), 'hello over IPv6\n');

  // Deploying the same manifest again changes nothing.
  const again = await runPier(['deploy', '-c', file, '--json'], server.env);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already deployed/);
  assert.equal((JSON.parse(again.stdout) as { release: number }).release, 1);

  const victim = live[0];
  assert.ok(victim?.containerId);
  await exec('docker', ['kill', victim.containerId]);

  const healed = await waitForStatus(server, 'a replacement instance', (s) => {
    const ids = s.instances.filter((i) => i.state === 'running' && i.desired === 'running').map((i) => i.id);
    return ids.length === 2 && !ids.includes(victim.id);
  });
  assert.equal(healed.instances.filter((i) => i.state === 'running').length, 2);

  const ev = await runPier(['events', '--app', 'echo', '--json'], server.env);
  assert.equal(ev.code, 0, ev.stderr);
  const events = JSON.parse(ev.stdout) as EventView[];
  const exit = events.find((e) => e.type === 'instance.exited' && e.instance === victim.id);
  assert.ok(exit, `no instance.exited event for ${victim.id}: ${JSON.stringify(events.map((e) => e.message))}`);
  assert.equal(exit.reason, 'killed');
  assert.match(exit.message, /exited with code 137 \(killed by SIGKILL\)/);
  assert.equal(await echoThrough('127.0.0.1', 9000, 'still here\n'), 'still here\n');
  assert.ok(events.some((e) => e.type === 'endpoint.changed' && /:9000 added/.test(e.message)));

  const described = await runPier(['describe', 'instance', victim.id, '--json'], server.env);
  assert.equal(described.code, 0, described.stderr);
  const doc = JSON.parse(described.stdout) as { instance: { state: string; lastExitCode: number; lastReason: string } };
  assert.equal(doc.instance.state, 'exited');
  assert.equal(doc.instance.lastExitCode, 137);
  assert.match(doc.instance.lastReason, /killed by SIGKILL/);

  // Scaling is idempotent: the second identical call changes nothing.
  const up = await runPier(['scale', 'echo=3', '--app', 'echo', '--json'], server.env);
  assert.equal(up.code, 0, up.stderr);
  assert.equal((JSON.parse(up.stdout) as { changed: boolean }).changed, true);
  await waitForStatus(server, 'three instances', (s) => s.instances.filter((i) => i.state === 'running' && i.desired === 'running').length === 3);
  const same = await runPier(['scale', 'echo=3', '--app', 'echo', '--json'], server.env);
  assert.equal((JSON.parse(same.stdout) as { changed: boolean }).changed, false);
});

test('a deploy whose process exits at start fails with its exit code and log lines, and the previous release keeps serving', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const file = join(server.dir, 'pier.toml');
  const port = 9100 + Math.floor(Math.random() * 800);
  await writeFile(file, manifest(image, port));
  const first = await runPier(['deploy', '-c', file], server.env);
  assert.equal(first.code, 0, first.stderr);
  const before = await status(server);
  t.after(() => removeAppContainers(before.app.id));

  const broken = manifest(image, port).replace(`cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"]`, 'cmd = ["sh", "-c", "echo missing DATABASE_URL >&2; exit 1"]');
  await writeFile(file, broken);
  const failed = await runPier(['deploy', '-c', file], server.env);
  assert.equal(failed.code, 3, `expected exit 3:\n${failed.stderr}`);
  assert.match(failed.stderr, /exited with code 1/);
  assert.match(failed.stderr, /missing DATABASE_URL/);

  const after = await status(server);
  assert.equal(after.release?.version, 1, 'release v1 is current again');
  assert.equal(after.deployment?.state, 'failed');
  assert.equal(await echoThrough('127.0.0.1', port, 'v1 answers\n'), 'v1 answers\n');
});
