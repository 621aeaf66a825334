// Checks and the edge reach the container itself, at its address on Pier's network: nothing is
// published on the host, so no docker-proxy accepts for a process that does not listen. A tcp
// check on a port nobody listens on fails, and an endpoint whose target nobody listens on fails
// the deploy at its deadline with the endpoint, the port and the error, while the old release
// keeps serving. Real `pier server`, real Docker, the real CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { exchange, freePort } from '../support/tcp-client.js';

const exec = promisify(execFile);

function manifest(app: string, image: string, o: { port: number; target: number; extra?: string; timeout?: string }): string {
  return `
app = "${app}"
image = "${image}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"]
count = 1
${o.extra ?? ''}

[[endpoints]]
process = "web"
port = ${o.port}
target = ${o.target}

[deploy]
timeout = "${o.timeout ?? '60s'}"
drain = "0s"
`;
}

async function deploy(server: PierServer, app: string, text: string) {
  const file = join(server.dir, `${app}-${Math.random().toString(36).slice(2, 8)}.toml`);
  await writeFile(file, text);
  return runPier(['deploy', '-c', file], server.env, { timeoutMs: 180_000 });
}

async function status(server: PierServer, app: string): Promise<StatusView> {
  const r = await runPier(['status', '--app', app, '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusView;
}

async function echoThrough(port: number, payload: string): Promise<string> {
  let last: unknown;
  for (let i = 0; i < 20; i++) {
    try {
      const reply = (await exchange('127.0.0.1', port, payload)).toString();
      if (reply === payload) return reply;
      last = new Error(`got ${JSON.stringify(reply)}`);
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw last;
}

test('the edge reaches instances at their address on the network; nothing is published on the host', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = await freePort();
  const r = await deploy(server, 'reach', manifest('reach', image, { port, target: 8080 }));
  assert.equal(r.code, 0, `${r.stderr}\n${server.stderr().slice(-3000)}`);
  const s = await status(server, 'reach');
  t.after(() => removeAppContainers(s.app.id));
  const [inst] = s.instances.filter((i) => i.state === 'running');
  assert.ok(inst?.address, JSON.stringify(s.instances));
  assert.match(inst.address, /^198\.19\./, 'an address in the default subnet');
  assert.equal(inst.health, 'healthy', 'the implicit readiness check saw it listen');

  const described = JSON.parse((await runPier(['describe', 'endpoint', `reach/${port}`, '--json'], server.env)).stdout) as { backends: { address: string; port: number }[] };
  assert.deepEqual(described.backends.map((b) => [b.address, b.port]), [[inst.address, 8080]], 'the edge is told the container address and the target port');
  const payload = `through the edge ${Math.random()}\n`;
  assert.equal(await echoThrough(port, payload), payload);

  const { stdout } = await exec('docker', ['ps', '--filter', `label=dev.pier.app=${s.app.id}`, '--format', '{{.Ports}}|{{.Networks}}']);
  // Pier's network (the host's way in) and the org's private network; nothing published.
  assert.match(stdout.trim(), /^\|(pier,pier-private-org_\w+|pier-private-org_\w+,pier)$/, 'no published port; on the pier network and the private one');
});

test('a tcp check on a port where nothing listens fails, and the deploy says why', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = await freePort();
  // nc listens on 8080; the check probes 8081, where the container has nothing.
  const check = '[processes.web.check]\ntype = "tcp"\nport = 8081\ninterval = "500ms"\ntimeout = "1s"';
  const r = await deploy(server, 'tcpcheck', manifest('tcpcheck', image, { port, target: 8080, extra: check, timeout: '6s' }));
  const s = await status(server, 'tcpcheck');
  t.after(() => removeAppContainers(s.app.id));
  assert.equal(r.code, 3, `expected the deploy to fail:\n${r.stderr}`);
  assert.match(r.stderr, /check tcp :8081: ECONNREFUSED/);
  assert.ok(!s.instances.some((i) => i.health === 'healthy'), JSON.stringify(s.instances));
});

test('a wrong endpoint target fails the deploy at its deadline naming the endpoint, the port and the error; the old release keeps serving', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const port = await freePort();
  const v1 = await deploy(server, 'target', manifest('target', image, { port, target: 8080 }));
  assert.equal(v1.code, 0, v1.stderr);
  const before = await status(server, 'target');
  t.after(() => removeAppContainers(before.app.id));

  const v2 = await deploy(server, 'target', manifest('target', image, { port, target: 8081, timeout: '5s' }));
  assert.equal(v2.code, 3, `expected exit 3:\n${v2.stderr}`);
  assert.match(v2.stderr, new RegExp(`nothing listens on port 8081 in target-web-\\S+ \\(endpoint :${port} targets it\\): ECONNREFUSED`));
  assert.match(v2.stderr, /v1 keeps serving/);

  const after = await status(server, 'target');
  assert.equal(after.release?.version, 1);
  assert.equal(after.deployment?.state, 'failed');
  assert.equal(after.deployment?.failure?.reason, 'not-listening');
  assert.deepEqual(after.endpoints.map((e) => [e.port, e.target]), [[port, 8080]]);
  const payload = `still v1 ${Math.random()}\n`;
  assert.equal(await echoThrough(port, payload), payload);
});
