// `npm run bench -- --only redis`: Redis deployed with Pier behind an endpoint, measured with
// redis-benchmark (-c 50, SET and GET, bounded -n) in one run, in alternating rounds: straight to
// the container's address on Pier's network, through HAProxy (one thread, mode tcp) to that same
// address, through the edge of `pier server` (the endpoint as deployed), and through a standalone
// `pier edge` (one worker, the same backend) that shares its process with nothing else. Reports
// requests/s, same-round ratios, and each proxy's CPU time per request.
// Skipped, with the reason, when Docker, redis-benchmark, HAProxy or the redis binary is missing.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, pairedRatio } from './summary.js';
import { ensureRedisImage, REDIS_IMAGE, redisImageProblem } from './redis-image.js';
import { cpuSeconds, processTree, run, startDaemon, type Daemon } from './tools.js';

const PIER = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const TESTS = ['SET', 'GET'] as const;
const PATHS = ['direct', 'haproxy', 'edge', 'edge-alone'] as const;
type PathName = (typeof PATHS)[number];

export interface RedisOptions {
  rounds: number;
  /** Requests per redis-benchmark run (-n). */
  requests: number;
  clients: number;
}

export interface RedisResult {
  skipped?: string;
  /** test → path → requests/s per round. */
  samples?: Record<string, Record<PathName, number[]>>;
  /** path → CPU µs the proxy's processes spent per request (SET and GET together), per round. */
  cpuUsPerRequest?: Record<PathName, number[]>;
  address?: string;
}

/** Null when the benchmark can run, else why not (each missing piece and how to get it). */
export async function redisBenchProblem(): Promise<string | null> {
  const problems: string[] = [];
  const has = (cmd: string) => run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false);
  if (!(await run('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 10_000 }).then(() => true, () => false))) problems.push('Docker does not answer');
  if (!(await has('redis-benchmark'))) problems.push('redis-benchmark is missing (apt-get install -y redis-tools)');
  if (!(await has('haproxy'))) problems.push('haproxy is missing (apt-get install -y haproxy)');
  const image = redisImageProblem();
  if (image) problems.push(image);
  return problems.length ? problems.join('; ') : null;
}

export async function runRedisBench(o: RedisOptions, log: (line: string) => void): Promise<RedisResult> {
  const problem = await redisBenchProblem();
  if (problem) return { skipped: problem };
  await ensureRedisImage();
  const dir = await mkdtemp(join(tmpdir(), 'pier-bench-redis-'));
  const env: NodeJS.ProcessEnv = { ...process.env, PIER_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), PIER_LOG_LEVEL: 'warn' };
  delete env.DATABASE_URL;
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  let server: ChildProcess | undefined;
  let haproxy: Daemon | undefined;
  let edge: Daemon | undefined;
  try {
    server = spawn(process.execPath, [PIER, 'server', '--api-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    await serverReady(server);
    const edgePort = await freePort();
    const manifest = join(dir, 'pier.toml');
    await writeFile(
      manifest,
      [
        'app = "redis-bench"',
        `image = "${REDIS_IMAGE}"`,
        '[processes.redis]',
        'count = 1',
        '[[endpoints]]',
        'process = "redis"',
        `port = ${edgePort}`,
        'target = 6379',
      ].join('\n'),
    );
    await pier(['deploy', '-c', manifest], env);
    const status = JSON.parse(await pier(['status', '--app', 'redis-bench', '--json'], env)) as { instances: { state: string; address: string | null }[] };
    const address = status.instances.find((i) => i.state === 'running')?.address;
    if (!address) throw new Error(`no running redis instance: ${JSON.stringify(status.instances)}`);
    log(`redis: deployed at ${address}:6379, edge on 127.0.0.1:${edgePort}`);

    const haproxyPort = await freePort();
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig(haproxyPort, address));
    haproxy = startDaemon('haproxy', ['-db', '-f', cfg]);
    const alonePort = await freePort();
    const snapshot = join(dir, 'edge.json');
    await writeFile(
      snapshot,
      JSON.stringify({ version: 1, endpoints: [{ id: 'redis', app: 'redis-bench', bind: [{ address: '127.0.0.1', port: alonePort }], proxyProtocol: 'none', backends: [{ id: 'r1', address, port: 6379 }] }] }),
    );
    edge = startDaemon(process.execPath, [PIER, 'edge', '--config', snapshot, '--workers', '1', '--admin-listen', '127.0.0.1:0', '--data-dir', join(dir, 'edge')], {
      env: { ...process.env, PIER_LOG_LEVEL: 'warn' },
    });
    const targets: Record<PathName, [string, number]> = {
      direct: [address, 6379],
      haproxy: ['127.0.0.1', haproxyPort],
      edge: ['127.0.0.1', edgePort],
      'edge-alone': ['127.0.0.1', alonePort],
    };
    // Whose CPU a path costs: nothing for direct, the proxy's process tree otherwise.
    const serverPid = server.pid as number;
    const cpuOf: Record<PathName, () => number> = {
      direct: () => 0,
      haproxy: () => cpuSeconds(processTree(haproxy?.child.pid as number)),
      edge: () => cpuSeconds(processTree(serverPid)),
      'edge-alone': () => cpuSeconds(processTree(edge?.child.pid as number)),
    };
    for (const [host, port] of Object.values(targets)) await pingRedis(host, port);

    const samples: Record<string, Record<PathName, number[]>> = {};
    for (const test of TESTS) samples[test] = { direct: [], haproxy: [], edge: [], 'edge-alone': [] };
    const cpuUsPerRequest: Record<PathName, number[]> = { direct: [], haproxy: [], edge: [], 'edge-alone': [] };
    for (let round = 0; round < o.rounds; round++) {
      // Each round starts at another path, so no path is always measured first or last.
      const order = PATHS.map((_, i) => PATHS[(i + round) % PATHS.length] as PathName);
      for (const path of order) {
        const [host, port] = targets[path];
        const cpuBefore = cpuOf[path]();
        const rps = await benchmark(host, port, o);
        cpuUsPerRequest[path].push(((cpuOf[path]() - cpuBefore) * 1e6) / (o.requests * TESTS.length));
        for (const test of TESTS) samples[test]?.[path].push(rps[test] ?? NaN);
        log(`  redis round ${round + 1} ${path}: ${TESTS.map((t) => `${t} ${Math.round(rps[t] ?? NaN)}/s`).join(', ')}`);
      }
    }
    await pier(['apps', 'delete', 'redis-bench', '--yes'], env).catch((err: Error) => log(`redis: delete failed: ${err.message}`));
    return { samples, cpuUsPerRequest, address };
  } finally {
    await haproxy?.stop();
    await edge?.stop();
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server?.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** The Markdown table of a run: medians, and the edge against HAProxy and direct per round. */
export function redisTable(result: RedisResult, o: RedisOptions): string {
  if (result.skipped || !result.samples) return `### Redis through the edge\n\nskipped: ${result.skipped ?? 'no samples'}\n`;
  const lines = [
    `### Redis through the edge (redis-benchmark -c ${o.clients} -n ${o.requests}, ${o.rounds} alternating rounds)`,
    '',
    '| test | direct req/s | HAProxy 1t req/s | edge (pier server) req/s | edge alone req/s | edge / HAProxy | edge alone / HAProxy | edge / direct | HAProxy / direct |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  const f = (x: number) => Math.round(x).toLocaleString('en-US');
  const r = (x: number) => `${x.toFixed(2)}x`;
  for (const [test, s] of Object.entries(result.samples)) {
    lines.push(
      `| ${test} | ${f(median(s.direct))} | ${f(median(s.haproxy))} | ${f(median(s.edge))} | ${f(median(s['edge-alone']))} | ${r(pairedRatio(s.edge, s.haproxy))} | ${r(pairedRatio(s['edge-alone'], s.haproxy))} | ${r(pairedRatio(s.edge, s.direct))} | ${r(pairedRatio(s.haproxy, s.direct))} |`,
    );
  }
  const cpu = result.cpuUsPerRequest;
  if (cpu) {
    lines.push(
      '',
      `Proxy CPU per request (median µs; the edge of pier server counts the whole server process): HAProxy ${median(cpu.haproxy).toFixed(1)}, edge ${median(cpu.edge).toFixed(1)}, edge alone ${median(cpu['edge-alone']).toFixed(1)}.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function benchmark(host: string, port: number, o: RedisOptions): Promise<Record<string, number>> {
  const { stdout } = await run('redis-benchmark', ['-h', host, '-p', String(port), '-c', String(o.clients), '-n', String(o.requests), '-t', 'set,get', '--csv'], { timeout: 300_000 });
  const out: Record<string, number> = {};
  for (const line of stdout.split('\n')) {
    const m = /^"(\w+)","([\d.]+)"/.exec(line.trim());
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function pingRedis(host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await run('redis-cli', ['-h', host, '-p', String(port), 'ping'], { timeout: 5_000 }).then((r) => r.stdout.trim() === 'PONG', () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`redis does not answer PING at ${host}:${port}`);
}

function haproxyConfig(port: number, address: string): string {
  return `global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
listen redis
  bind 127.0.0.1:${port}
  server r1 ${address}:6379
`;
}

async function pier(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await run(process.execPath, [PIER, ...args], { env, timeout: 180_000 });
  return stdout;
}

function serverReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`pier server did not start in 60 s\n${out}\n${err}`)), 60_000);
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      if (/API on http/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pier server exited (${code})\n${out}\n${err}`));
    });
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.once('error', reject);
  });
}

