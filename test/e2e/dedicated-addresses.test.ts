// Dedicated addresses through the real binary (issue 16), without a namespace: `pier server
// --ip-pool` with a random /24 of 127.0.0.0/8 (so parallel runs do not meet), two apps each
// serving the same port P on their own dedicated address through the real edge, each seeing only
// its own traffic; a third app on the shared address and port P is refused with the owner's name;
// a manifest asking for an address the app lacks is refused with the command to run; a release
// is refused while an endpoint binds the address; deleting an app releases its address, which the
// edge then stops serving and, once the edge said so, cools down.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EdgeView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { freePortOnBoth } from '../support/tcp-client.js';

const manifest = (app: string, image: string, port: number, ipv4: string) => `
app = "${app}"
image = "${image}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e sh -c 'echo ${app}; cat' & wait"]
count = 1

[[endpoints]]
process = "web"
port = ${port}
target = 8080
ipv4 = "${ipv4}"
ipv6 = "none"

[deploy]
drain = "0s"
`;

/** The first line answered on address:port ('' when nothing answers; 'refused' when nothing listens). */
function firstLine(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let got = '';
    const done = (line: string) => {
      s.destroy();
      resolve(line);
    };
    s.setTimeout(3_000, () => done(''));
    s.on('data', (b: Buffer) => {
      got += b.toString();
      if (got.includes('\n')) done(got.split('\n')[0] ?? '');
    });
    s.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'refused' : ''));
    s.on('close', () => done(got.split('\n')[0] ?? ''));
  });
}

/** Bounded: `want` within 10 s (a fresh container's nc takes a moment to listen). */
async function answers(host: string, port: number, want: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    last = await firstLine(host, port);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`${host}:${port} answered ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
}

async function json<T>(server: PierServer, args: string[]): Promise<T> {
  const r = await runPier([...args, '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

test('two apps serve one port on their own dedicated addresses and see their own traffic; the shared address and port stay one owner', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const pool = `127.${randomInt(64, 250)}.${randomInt(0, 256)}.0/24`;
  const server = await startPierServer(t, {}, { args: ['--ip-pool', pool] });
  const port = await freePortOnBoth();
  const file = (name: string) => join(server.dir, `${name}.toml`);
  const deploy = async (name: string, ipv4: string) => {
    await writeFile(file(name), manifest(name, image, port, ipv4));
    return runPier(['deploy', '-c', file(name)], server.env, { timeoutMs: 180_000 });
  };
  const cleanup: string[] = [];
  t.after(async () => {
    for (const id of cleanup) await removeAppContainers(id);
  });

  let edges: EdgeView[] = [];
  for (let i = 0; i < 60 && !edges.some((e) => e.live); i++) {
    edges = (await json<{ edges: EdgeView[] }>(server, ['edges'])).edges;
    if (!edges.some((e) => e.live)) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(edges.some((e) => e.live), 'the edge of pier server reports to the API');

  // A new app cannot ask for a dedicated address: it has none, and the refusal says what to do.
  const early = await deploy('alpha', 'dedicated');
  assert.equal(early.code, 1, early.stderr);
  assert.match(early.stderr, /E_IP_NOT_ALLOCATED/);
  assert.match(early.stderr, /deploy it once without "dedicated".*pier ips allocate --app alpha --v4/);

  // alpha on the shared address first; then its own address, picked up by the next deploy.
  const first = await deploy('alpha', 'auto');
  assert.equal(first.code, 0, first.stderr);
  const alphaId = (await json<StatusView>(server, ['status', '--app', 'alpha'])).app.id;
  cleanup.push(alphaId);
  await answers('127.0.0.1', port, 'alpha');
  const allocated = await json<{ address: string; created: boolean }>(server, ['ips', 'allocate', '--app', 'alpha', '--v4']);
  const alphaAddress = allocated.address;
  assert.equal(allocated.created, true);
  assert.equal(alphaAddress, pool.replace(/0\/24$/, '1'));
  const moved = await deploy('alpha', 'auto');
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, new RegExp(`:${port} served on ${alphaAddress.replace(/\./g, '\\.')}:${port} by the edge`));
  await answers(alphaAddress, port, 'alpha');
  assert.equal(await firstLine('127.0.0.1', port), 'refused', 'alpha left the shared address');

  // beta takes the same port on the shared address: a different address, so allowed.
  const shared = await deploy('beta', 'auto');
  assert.equal(shared.code, 0, shared.stderr);
  cleanup.push((await json<StatusView>(server, ['status', '--app', 'beta'])).app.id);
  await answers('127.0.0.1', port, 'beta');
  // gamma on the same shared address and port: refused, naming beta.
  const refused = await deploy('gamma', 'auto');
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`port ${port} is held by app "beta" \\(E_PORT_IN_USE\\)`));

  // beta gets its own address too: both serve port P, each on its own, each sees its own traffic.
  const betaAddress = (await json<{ address: string }>(server, ['ips', 'allocate', '--app', 'beta', '--v4'])).address;
  assert.notEqual(betaAddress, alphaAddress);
  const betaMoved = await deploy('beta', 'dedicated');
  assert.equal(betaMoved.code, 0, betaMoved.stderr);
  await answers(betaAddress, port, 'beta');
  await answers(alphaAddress, port, 'alpha');
  for (let i = 0; i < 5; i++) {
    assert.equal(await firstLine(alphaAddress, port), 'alpha');
    assert.equal(await firstLine(betaAddress, port), 'beta');
  }
  const status = await json<StatusView>(server, ['status', '--app', 'beta']);
  assert.deepEqual(status.endpoints.map((e) => [e.bind, e.served.state]), [[[{ address: betaAddress, port, family: 'ipv4', kind: 'dedicated' }], 'served']]);
  const listed = await json<{ ips: { address: string; app: string | null; kind: string }[] }>(server, ['ips', 'list', '--v4']);
  assert.deepEqual(
    listed.ips.map((i) => [i.address, i.kind, i.app]),
    [['127.0.0.1', 'shared', null], [alphaAddress, 'dedicated', 'alpha'], [betaAddress, 'dedicated', 'beta']],
  );

  // In use: refused, naming the endpoint.
  const inUse = await runPier(['ips', 'release', alphaAddress, '--yes'], server.env);
  assert.equal(inUse.code, 1, inUse.stderr);
  assert.match(inUse.stderr, new RegExp(`alpha:${port}.*E_IP_IN_USE`));

  // Deleting alpha releases its address: the edge stops serving it, and it cools down.
  const deleted = await json<{ addresses: string[] }>(server, ['apps', 'delete', 'alpha', '--yes']);
  assert.deepEqual(deleted.addresses, [alphaAddress]);
  let last = '';
  for (let i = 0; i < 40 && last !== 'refused'; i++) {
    last = await firstLine(alphaAddress, port);
    if (last !== 'refused') await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(last, 'refused', `${alphaAddress}:${port} is no longer served`);
  // Its cool-down starts once the edge has reported it stopped serving it (releasing until then).
  let described = await json<{ ip: { state: string; app: string | null; reusableAt: string } }>(server, ['ips', 'describe', alphaAddress]);
  for (let i = 0; i < 40 && described.ip.state === 'releasing'; i++) {
    await new Promise((r) => setTimeout(r, 250));
    described = await json<{ ip: { state: string; app: string | null; reusableAt: string } }>(server, ['ips', 'describe', alphaAddress]);
  }
  assert.deepEqual([described.ip.state, described.ip.app], ['cooling', null]);
  assert.equal(await firstLine(betaAddress, port), 'beta');
});
