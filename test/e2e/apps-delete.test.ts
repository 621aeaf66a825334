// `pier apps delete` and refused deploys through the real binary, on real Docker (issue 9,
// defect 3): a script must pass --yes (exit 2 otherwise); the delete stops and removes the
// containers, frees the port (the edge stops serving it and another app takes it), revokes the
// app's tokens and keeps its events readable; a deploy it interrupts ends as cancelled; a deploy
// refused for its port (naming the app that holds it) or its image leaves no app behind.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { AppView, EventView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { exchange, freePort } from '../support/tcp-client.js';

const exec = promisify(execFile);

function manifest(app: string, image: string, port: number, o: { target?: number; timeout?: string; count?: number } = {}): string {
  return `app = "${app}"
image = "${image}"
[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"]
count = ${o.count ?? 2}
[[endpoints]]
process = "web"
port = ${port}
target = ${o.target ?? 8080}
[deploy]
timeout = "${o.timeout ?? '60s'}"
drain = "0s"
`;
}

async function file(server: PierServer, text: string): Promise<string> {
  const path = join(server.dir, `pier-${Math.random().toString(36).slice(2, 8)}.toml`);
  await writeFile(path, text);
  return path;
}

async function appNames(server: PierServer, deleted = false): Promise<string[]> {
  const r = await runPier(['apps', 'list', '--json', ...(deleted ? ['--deleted'] : [])], server.env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { apps: AppView[] }).apps.map((a) => a.name);
}

async function containers(appId: string): Promise<string[]> {
  const { stdout } = await exec('docker', ['ps', '-aq', '--filter', `label=dev.pier.app=${appId}`]);
  return stdout.split('\n').filter(Boolean);
}

async function echoes(port: number): Promise<boolean> {
  try {
    return (await exchange('127.0.0.1', port, 'ping\n')).toString() === 'ping\n';
  } catch {
    return false;
  }
}

test('pier apps delete needs --yes without a terminal, then removes containers, frees the port, revokes tokens and keeps the events', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = await freePort();
  const deployed = await runPier(['deploy', '-c', await file(server, manifest('gone', image, port))], server.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  const status = JSON.parse((await runPier(['status', '--app', 'gone', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(status.app.id));
  assert.equal((await containers(status.app.id)).length, 2);
  for (let i = 0; i < 20 && !(await echoes(port)); i++) await new Promise((r) => setTimeout(r, 250));
  assert.ok(await echoes(port), 'served before the delete');
  const token = await runPier(['tokens', 'create', '--scope', 'deploy', '--app', 'gone', '--json'], server.env);
  const secret = (JSON.parse(token.stdout) as { secret: string }).secret;

  const refused = await runPier(['apps', 'delete', 'gone'], server.env);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /--yes/);
  assert.deepEqual(await appNames(server), ['gone'], 'nothing deleted without --yes');

  const r = await runPier(['apps', 'delete', 'gone', '--yes'], server.env);
  assert.equal(r.code, 0, `${r.stderr}\n${server.stderr().slice(-3000)}`);
  assert.match(r.stdout, new RegExp(`deleted gone \\(${status.app.id}\\): 2 instances stopped and removed, port ${port} freed, 1 app token revoked`));
  assert.deepEqual(await containers(status.app.id), [], 'its containers are gone when the command returns');
  assert.equal(await echoes(port), false, 'the edge no longer serves the port');
  assert.deepEqual(await appNames(server), []);
  assert.deepEqual(await appNames(server, true), ['gone']);
  assert.equal((await runPier(['apps', 'list'], { ...server.env, PIER_TOKEN: secret })).code, 4, 'the app token is revoked');

  const audit = await runPier(['events', '--app', 'gone', '--deleted', '--json'], server.env);
  assert.equal(audit.code, 0, audit.stderr);
  const types = (JSON.parse(audit.stdout) as EventView[]).map((e) => e.type);
  assert.ok(types.includes('deploy.started') && types.includes('app.deleted'), types.join(', '));
  assert.equal((await runPier(['events', '--app', status.app.id, '--json'], server.env)).code, 0, 'by id too');
  assert.equal((await runPier(['status', '--app', 'gone'], server.env)).code, 1);

  // The port is another app's at once; the name can be used again.
  const taker = await runPier(['deploy', '-c', await file(server, manifest('taker', image, port, { count: 1 }))], server.env);
  assert.equal(taker.code, 0, taker.stderr);
  const takerStatus = JSON.parse((await runPier(['status', '--app', 'taker', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(takerStatus.app.id));
  assert.ok(await echoes(port));
  assert.equal((await runPier(['apps', 'delete', 'taker', '--yes', '--json'], server.env)).code, 0);
  assert.equal((await runPier(['apps', 'delete', 'taker', '--yes'], server.env)).code, 1, 'deleting it again: not found');
});

test('a deploy that a delete interrupts ends as cancelled (exit 1), and refused deploys leave no app behind', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = await freePort();
  assert.equal((await runPier(['deploy', '-c', await file(server, manifest('holder', image, port, { count: 1 }))], server.env)).code, 0);
  const holder = JSON.parse((await runPier(['status', '--app', 'holder', '--json'], server.env)).stdout) as StatusView;
  t.after(() => removeAppContainers(holder.app.id));

  // E_PORT_IN_USE names the app that holds the port; E_IMAGE_NOT_FOUND; neither leaves an app.
  const clash = await runPier(['deploy', '-c', await file(server, manifest('squatter', image, port, { count: 1 }))], server.env);
  assert.equal(clash.code, 1, clash.stderr);
  assert.match(clash.stderr, new RegExp(`port ${port} is held by app "holder".*\\(E_PORT_IN_USE\\)`));
  const noImage = await runPier(['deploy', '-c', await file(server, manifest('ghost', 'pier-test/no-such-image:1', await freePort(), { count: 1 }))], server.env);
  assert.equal(noImage.code, 1, noImage.stderr);
  assert.match(noImage.stderr, /E_IMAGE_NOT_FOUND/);
  assert.deepEqual(await appNames(server), ['holder']);
  assert.deepEqual(await appNames(server, true), []);

  // A rollout that waits (its target never listens) and a delete in the middle of it.
  const v2 = spawn(process.execPath, [PIER_BIN, 'deploy', '-c', await file(server, manifest('holder', image, port, { count: 1, target: 8081, timeout: '120s' }))], { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  v2.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const ended = new Promise<number | null>((resolve) => v2.once('close', resolve));
  t.after(() => v2.kill('SIGKILL'));
  for (let i = 0; i < 120 && !/deploying holder release v2/.test(stderr); i++) await new Promise((r) => setTimeout(r, 250));
  assert.match(stderr, /deploying holder release v2/);
  const deleted = await runPier(['apps', 'delete', 'holder', '--yes'], server.env);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stdout, /deployment dep_\S+ cancelled/);
  // Unref'd: a pending 30 s timer would keep this file's process (and the test run) waiting.
  const code = await Promise.race([ended, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000).unref())]);
  assert.equal(code, 1, stderr);
  assert.match(stderr, /was cancelled: the app holder was deleted \(E_DEPLOY_CANCELLED\)/);
  assert.deepEqual(await containers(holder.app.id), []);
});
