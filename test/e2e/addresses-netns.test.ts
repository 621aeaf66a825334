// Addresses as resources across two network namespaces (issue 16; needs root and Docker, skipped
// without). The test makes a server and a client namespace joined by a veth (198.18.A.0/24 and
// fd00:16:R:1::/64), routes an IPv6 pool prefix to `lo` in the server namespace (AnyIP), and runs
// the real `pier server` (API and edge) there with `nsenter --net` (not `ip netns exec`, which
// remounts /sys). Its containers run on a Docker network of the test's own (198.18.D.0/24) whose
// bridge a second veth joins to the server namespace, so the edge reaches them. The client is a
// Node process in the client namespace. Checked: with net.ipv6.ip_nonlocal_bind=0 the server
// reports E_POOL_NOT_BINDABLE with the fix at start; with it set then, two IPv6-only apps get their own IPv6 on
// their first deploy and are each reached on it from the client on the same port, and not over
// IPv4; deleting one makes its address refuse connections, the edge confirms it stopped serving
// it, and the address goes to no app before its (short) cool-down ends, then to the next one.
// The server uses its embedded database even with DATABASE_URL set: PostgreSQL on the host's
// 127.0.0.1 is not reachable from the server namespace.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { removeInstallation } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, type CliResult } from '../support/pier-process.js';

const run = promisify(execFile);
const COOLDOWN_S = 8;

const manifest = (app: string, image: string, port: number) => `
app = "${app}"
image = "${image}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e sh -c 'echo ${app}; cat' & wait"]
count = 1

[[endpoints]]
process = "web"
port = ${port}
target = 8080
ipv4 = "none"

[deploy]
drain = "0s"
`;

/** In the client namespace: the first line `host:port` answers ('refused' when nothing listens), retried until it is `want` (bounded). */
const CLIENT = `
const net = require('node:net');
const [host, port, want] = process.argv.slice(1);
const once = () => new Promise((resolve) => {
  const s = net.connect({ host, port: Number(port) });
  let got = '';
  const done = (line) => { s.destroy(); resolve(line); };
  s.setTimeout(3000, () => done('timeout'));
  s.on('data', (b) => { got += b; if (got.includes('\\n')) done(got.split('\\n')[0]); });
  s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  s.on('close', () => done(got.split('\\n')[0]));
});
(async () => {
  let last = '';
  for (let i = 0; i < 40; i++) {
    last = await once();
    if (last === want) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  console.log(last);
})();
`;

interface IpJson {
  address: string;
  app: string | null;
}

test('two namespaces: each app on its own IPv6 from the client, not over IPv4; a deleted app\'s address is refused, confirmed by the edge, and reused only after its cool-down', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to make network namespaces');
  if (!(await requireDocker(t))) return;
  const tag = randomBytes(3).toString('hex');
  const [srv, cli] = [`p16s-${tag}`, `p16c-${tag}`];
  try {
    await run('ip', ['netns', 'add', srv]);
  } catch (err) {
    return t.skip(`cannot make a network namespace: ${(err as Error).message}`);
  }
  const cleanups: (() => Promise<unknown>)[] = [() => run('ip', ['netns', 'del', srv])];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c().catch((err: unknown) => t.diagnostic(`cleanup: ${(err as Error).message}`));
  });
  await run('ip', ['netns', 'add', cli]);
  cleanups.push(() => run('ip', ['netns', 'del', cli]));
  const image = await ensureBusyboxImage();

  // The link between the namespaces, and the IPv6 pool routed to lo in the server namespace.
  const r = randomInt(0x100, 0xffff).toString(16);
  const link = randomInt(16, 250);
  const serverV4 = `198.18.${link}.1`;
  const serverV6 = `fd00:16:${r}:1::1`;
  const pool = `fd00:16:${r}:2::/127`; // two addresses: a third app finds none while one cools down
  const ns = (name: string, ...args: string[]) => run('ip', ['-n', name, ...args]);
  await run('ip', ['link', 'add', `v16s${tag}`, 'netns', srv, 'type', 'veth', 'peer', 'name', `v16c${tag}`, 'netns', cli]);
  for (const [name, dev, v4, v6] of [[srv, `v16s${tag}`, `${serverV4}/24`, `${serverV6}/64`], [cli, `v16c${tag}`, `198.18.${link}.2/24`, `fd00:16:${r}:1::2/64`]] as const) {
    await ns(name, 'link', 'set', 'lo', 'up');
    await ns(name, 'addr', 'add', v4, 'dev', dev);
    await ns(name, '-6', 'addr', 'add', v6, 'dev', dev, 'nodad');
    await ns(name, 'link', 'set', dev, 'up');
  }
  await ns(srv, '-6', 'route', 'add', 'local', `fd00:16:${r}:2::/64`, 'dev', 'lo');
  await ns(cli, '-6', 'route', 'add', `fd00:16:${r}:2::/64`, 'via', serverV6);

  // Pier's Docker network (made here, labelled as Pier's, so its bridge exists before Pier starts),
  // joined to the server namespace by a veth (containers take .2-.127, the namespace .250).
  const network = `pier16-${tag}`;
  let dockerNet = '';
  for (let i = 0; i < 5 && !dockerNet; i++) {
    const d = randomInt(16, 250);
    if (d === link) continue;
    dockerNet = await run('docker', ['network', 'create', '--subnet', `198.18.${d}.0/24`, '--ip-range', `198.18.${d}.0/25`, '--label', 'dev.pier.managed=true', '--label', 'dev.pier.test=addresses-netns', network])
      .then(() => `198.18.${d}`)
      .catch(() => ''); // that range is another network's: try another
  }
  assert.ok(dockerNet, 'a Docker network on a free 198.18.x.0/24');
  cleanups.push(async () => {
    const { stdout } = await run('docker', ['ps', '-aq', '--filter', `network=${network}`]);
    const ids = stdout.split('\n').filter(Boolean);
    if (ids.length) await run('docker', ['rm', '-f', ...ids]);
    await run('docker', ['network', 'rm', network]);
  });
  const bridge = `br-${(await run('docker', ['network', 'inspect', '-f', '{{.Id}}', network])).stdout.trim().slice(0, 12)}`;
  await run('ip', ['link', 'add', `d16h${tag}`, 'type', 'veth', 'peer', 'name', `d16n${tag}`, 'netns', srv]);
  cleanups.push(() => run('ip', ['link', 'del', `d16h${tag}`]).catch(() => undefined)); // gone with the namespace, else here
  await run('ip', ['link', 'set', `d16h${tag}`, 'master', bridge, 'up']);
  await ns(srv, 'addr', 'add', `${dockerNet}.250/24`, 'dev', `d16n${tag}`);
  await ns(srv, 'link', 'set', `d16n${tag}`, 'up');

  const dir = await mkdtemp(join(tmpdir(), 'pier-netns-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: join(dir, 'config'),
    PIER_DATA_DIR: join(dir, 'data'),
    PIER_NETWORK: network,
    PIER_NETWORK_SUBNET: `${dockerNet}.0/24`,
    PIER_EDGE_IPV4: serverV4,
    PIER_EDGE_IPV6: serverV6,
    PIER_IP_COOLDOWN: `${COOLDOWN_S}s`,
    PIER_REGISTRY: 'off',
  };
  for (const k of ['DATABASE_URL', 'PIER_API_URL', 'PIER_TOKEN']) delete env[k];
  const inServer = (args: string[]) => ['--net=/run/netns/' + srv, ...args];
  const pier = (args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      execFile('nsenter', inServer([process.execPath, PIER_BIN, ...args]), { env, timeout: 180_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  const json = async <T>(args: string[]): Promise<T> => {
    const res = await pier([...args, '--json']);
    assert.equal(res.code, 0, `pier ${args.join(' ')}: ${res.stderr}`);
    return JSON.parse(res.stdout) as T;
  };
  const reach = async (host: string, port: number, want: string): Promise<string> =>
    (await run('nsenter', [`--net=/run/netns/${cli}`, process.execPath, '-e', CLIENT, host, String(port), want], { timeout: 30_000 })).stdout.trim();
  const sysctl = (value: 0 | 1) => run('nsenter', inServer(['sysctl', '-q', '-w', `net.ipv6.ip_nonlocal_bind=${value}`]));

  // Without the sysctl, the edge cannot bind the pool: the server says so at start, with the fix.
  // Set then, the edge binds the pool's addresses from its next listen on (no restart needed).
  await sysctl(0);
  const server = await startServer(cleanups, inServer([process.execPath, PIER_BIN, 'server', '--api-listen', '127.0.0.1:0', '--ip-pool', pool]), env);
  assert.match(server.stderr(), /E_POOL_NOT_BINDABLE/);
  assert.match(server.stderr(), /EADDRNOTAVAIL.*sysctl -w net\.ipv6\.ip_nonlocal_bind=1/);
  const pools = (await json<{ pools: { cidr: string; bindProblem: string | null }[] }>(['ips', 'list'])).pools;
  assert.match(pools.find((p) => p.cidr === pool)?.bindProblem ?? '', /^EADDRNOTAVAIL/);
  const unbindable = await json<{ type: string; reason: string }[]>(['events', '--type', 'ip.pool_unbindable']);
  assert.deepEqual(unbindable.map((e) => e.reason), ['EADDRNOTAVAIL']);
  await sysctl(1);

  const port = randomInt(20_000, 30_000);
  const deploy = async (app: string) => {
    await writeFile(join(dir, `${app}.toml`), manifest(app, image, port));
    return pier(['deploy', '-c', join(dir, `${app}.toml`)]);
  };
  for (const app of ['alpha', 'beta']) {
    const res = await deploy(app);
    assert.equal(res.code, 0, `${app}: ${res.stderr}`);
  }
  const own = async () => new Map((await json<{ ips: IpJson[] }>(['ips', 'list', '--v6'])).ips.filter((i) => i.app).map((i) => [i.app as string, i.address]));
  const first6 = await own();
  const [alpha6, beta6] = [first6.get('alpha') as string, first6.get('beta') as string];
  assert.deepEqual([alpha6, beta6], [`fd00:16:${r}:2::`, `fd00:16:${r}:2::1`], 'each app got its own IPv6 on its first deploy');

  // From the client namespace: each app on its own address and the same port; IPv4 refused.
  assert.equal(await reach(alpha6, port, 'alpha'), 'alpha');
  assert.equal(await reach(beta6, port, 'beta'), 'beta');
  assert.equal(await reach(serverV4, port, 'refused'), 'refused', 'an IPv6-only app is not served over IPv4');
  assert.equal(await reach(serverV6, port, 'refused'), 'refused', 'nor on the shared IPv6');

  // Deleted: the edge stops serving its address and confirms it; only then the cool-down starts,
  // and within it a new app finds no address (the pool holds two).
  // --wait 0: do not wait for the container (exit 8 says it is still there), the cool-down runs.
  const deleted = await pier(['apps', 'delete', 'alpha', '--yes', '--wait', '0', '--json']);
  assert.ok(deleted.code === 0 || deleted.code === 8, deleted.stderr);
  assert.deepEqual((JSON.parse(deleted.stdout) as { addresses: string[] }).addresses, [alpha6]);
  const early = await deploy('gamma');
  assert.equal(early.code, 1, early.stderr);
  assert.match(early.stderr, /E_POOL_EXHAUSTED/, `within the ${COOLDOWN_S} s cool-down, ${alpha6} goes to no app`);
  assert.equal(await reach(alpha6, port, 'refused'), 'refused');
  assert.equal(await reach(beta6, port, 'beta'), 'beta');
  type IpEvent = { type: string; reason: string; data: { address: string; edges?: { name: string }[]; reusableAt?: string } };
  let released: IpEvent[] = [];
  for (let i = 0; i < 40 && released.length === 0; i++) {
    released = await json<IpEvent[]>(['events', '--type', 'ip.released']);
    if (released.length === 0) await new Promise((res) => setTimeout(res, 250));
  }
  const releasing = await json<IpEvent[]>(['events', '--type', 'ip.releasing']);
  assert.deepEqual(releasing.map((e) => [e.reason, e.data.address, e.data.edges?.length]), [['app-deleted', alpha6, 1]], 'at the delete, it waits for the edge');
  assert.deepEqual(released.map((e) => [e.reason, e.data.address]), [['edges-confirmed', alpha6]], 'the edge confirmed it stopped serving the address');
  const ip = { reusableAt: released[0]?.data.reusableAt };
  const wait = Date.parse(ip.reusableAt as string) - Date.now();
  if (wait > 0) await new Promise((res) => setTimeout(res, wait + 100));
  const later = await deploy('gamma');
  assert.equal(later.code, 0, later.stderr);
  assert.equal((await own()).get('gamma'), alpha6);
  assert.equal(await reach(alpha6, port, 'gamma'), 'gamma');
});

interface NsServer {
  stderr: () => string;
  stop: () => Promise<void>;
}

/** `pier server` in the server namespace, up once it prints its API address; stopped first at the end. */
async function startServer(cleanups: (() => Promise<unknown>)[], nsenterArgs: string[], env: NodeJS.ProcessEnv): Promise<NsServer> {
  // nsenter execs the command: the child is the server itself, and signals reach it.
  const child: ChildProcess = spawn('nsenter', nsenterArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 15_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
  // Run after stop (cleanups run last first): the private network the server made on the host's
  // engine for the org (its chain was in the server namespace, gone with it) and any container.
  cleanups.push(async () => {
    const installation = /"installation":"(inst_[^"]+)"/.exec(err)?.[1];
    if (installation) await removeInstallation(installation);
  });
  cleanups.push(stop);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pier server did not start in 120 s\n${out}\n${err.slice(-4000)}`)), 120_000);
    child.stdout?.on('data', () => {
      if (/API on http/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pier server exited with ${code}\n${out}\n${err.slice(-4000)}`));
    });
  });
  // Its admin token is on disk once it is up; the CLI config beside it points at its API.
  await readFile(join(env.PIER_DATA_DIR as string, 'admin-token'), 'utf8');
  return { stderr: () => err, stop };
}
