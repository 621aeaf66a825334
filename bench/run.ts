// `npm run bench [-- --quick | --rounds N --duration S ...]`: starts the backends and every proxy
// under test once (the edge on each TCP I/O, the bare Node proxy on each, HAProxy, nginx), runs
// each test round-robin over the targets (A B C D, several rounds), and prints Markdown tables of
// medians, min/max and same-round ratios to HAProxy, direct and the bare proxy (plus JSON).
// `--only redis` runs only the Redis benchmark (bench/redis.ts: Pier, Docker, redis-benchmark).

import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBackends } from './backends.js';
import { bulk, connectionRate, idleMemory, pingPong } from './measure.js';
import { reconfigUnderLoad, type ReconfigResult } from './reconfig.js';
import type { TcpIoMode } from '../proxy/tcp-io/tcp-io.js';
import { costTable, record, rows, table, type Samples } from './summary.js';
import { directTarget, startTarget, type Target } from './targets.js';
import { runRedisBench, redisTable, type RedisOptions, type RedisResult } from './redis.js';
import { checkTools, run, versions } from './tools.js';
import { runTlsBench, tlsTable } from './tls.js';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    idle: { type: 'string' },
    changes: { type: 'string' },
    only: { type: 'string' },
    io: { type: 'string', default: 'handle,socket' },
    'pp-pairs': { type: 'string' },
    json: { type: 'string' },
    'port-base': { type: 'string', default: '31000' },
    requests: { type: 'string' },
  },
});
const rounds = Number(flags.rounds ?? (flags.quick ? 2 : 5));
const seconds = Number(flags.duration ?? (flags.quick ? 2 : 5));
const idleCount = Number(flags.idle ?? (flags.quick ? 2000 : 4000));
const changes = Number(flags.changes ?? 1000);
const only = flags.only === undefined ? null : new Set(flags.only.split(','));
const wanted = (test: string): boolean => only === null || only.has(test);
const base = Number(flags['port-base']);
const ioModes = flags.io.split(',') as TcpIoMode[];
/** Off/on pairs per target and round in the PROXY cost test. */
const ppPairs = Number(flags['pp-pairs'] ?? (flags.quick ? 2 : 4));
const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const loadBefore = loadAverage();
const redisOptions: RedisOptions = { rounds, requests: Number(flags.requests ?? (flags.quick ? 50_000 : 200_000)), clients: 50 };
const log = (line: string): void => void process.stderr.write(`${line}\n`);

if (only !== null && only.size === 1 && only.has('redis')) {
  // The Redis run needs Docker, redis-benchmark and HAProxy only, not the other tools.
  const result = await runRedisBench(redisOptions, log);
  const machine = { node: process.version, redis: (await run('redis-benchmark', ['--version']).catch(() => ({ stdout: 'missing' }))).stdout.trim(), haproxy: (await run('sh', ['-c', 'haproxy -v | head -n1']).catch(() => ({ stdout: 'missing' }))).stdout.trim() };
  process.stdout.write(
    [`## Run: ${new Date().toISOString()}, redis`, '', '```', ...Object.entries(machine).map(([k, v]) => `${k}: ${v}`), `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`, '```', '', redisTable(result, redisOptions)].join('\n'),
  );
  if (flags.json !== undefined) await writeFile(flags.json, `${JSON.stringify({ machine, redis: result, options: redisOptions }, null, 2)}\n`);
  process.exit(0);
}

if (only !== null && only.size === 1 && only.has('tls')) {
  // TLS termination: the edge against HAProxy ssl crt (bench/tls.ts); needs openssl and HAProxy only.
  const tlsDir = await mkdtemp(join(tmpdir(), 'pier-bench-tls-'));
  try {
    const result = await runTlsBench(tlsDir, { rounds, seconds, base }, log);
    const machine = { node: process.version, openssl: (await run('openssl', ['version'])).stdout.trim(), haproxy: (await run('sh', ['-c', 'haproxy -v | head -n1'])).stdout.trim() };
    process.stdout.write(
      [`## Run: ${new Date().toISOString()}, tls`, '', '```', ...Object.entries(machine).map(([k, v]) => `${k}: ${v}`), `load average (1, 5, 15 min): ${loadBefore} before, ${loadAverage()} after`, '```', '', tlsTable(result)].join('\n'),
    );
    if (flags.json !== undefined) await writeFile(flags.json, `${JSON.stringify({ machine, tls: result, options: { rounds, seconds } }, null, 2)}\n`);
  } finally {
    await rm(tlsDir, { recursive: true, force: true });
  }
  process.exit(0);
}

await checkTools();
const machine = await versions();
process.stderr.write(`bench: ${rounds} rounds × ${seconds} s; ${JSON.stringify(machine)}\n`);

const dir = await mkdtemp(join(tmpdir(), 'pier-bench-'));
const samples: Samples = new Map();
const stoppers: (() => Promise<void>)[] = [];
let reconfig: ReconfigResult | undefined;
let redis: RedisResult | undefined;
try {
  const backends = await startBackends(dir, base, '0');
  stoppers.push(() => backends.stop());
  const direct1 = directTarget(backends.ports);
  const direct2: Target = { ...directTarget(backends.ports), name: 'direct-2c', cores: 2 };
  const start = async (kind: 'edge' | 'bare' | 'haproxy' | 'nginx', cores: 1 | 2, offset: number, io?: TcpIoMode): Promise<Target> => {
    const t = await startTarget(kind, cores, base + offset, backends.ports, dir, io);
    stoppers.push(() => t.stop());
    return t;
  };
  // Port blocks of 10 (each target uses +0 … +6): edges from 100, bare proxies from 300.
  const each = async (kind: 'edge' | 'bare', cores: 1 | 2, offset: number): Promise<Target[]> => {
    const list: Target[] = [];
    for (const [i, io] of ioModes.entries()) list.push(await start(kind, cores, offset + 10 * i, io));
    return list;
  };
  const one = [direct1, ...(await each('edge', 1, 100)), ...(await each('bare', 1, 300)), await start('haproxy', 1, 200), await start('nginx', 1, 250)];
  const two = [direct2, ...(await each('edge', 2, 400)), await start('haproxy', 2, 500), await start('nginx', 2, 600)];
  const proxies = one.filter((t) => t.kind !== 'direct' && t.kind !== 'bare');

  const step = async (test: string, targets: Target[], measure: (t: Target) => Promise<Record<string, number>>): Promise<void> => {
    if (!wanted(test)) return;
    for (const t of targets) {
      const result = await measure(t);
      for (const [metric, value] of Object.entries(result)) record(samples, `${test}:${metric}`, t.name, value);
      process.stderr.write(`  ${test} ${t.name}: ${JSON.stringify(result)}\n`);
    }
  };
  for (let round = 1; round <= rounds; round++) {
    process.stderr.write(`round ${round}/${rounds}\n`);
    await step('bulk-1c', one, async (t) => ({ ...(await bulk(t, seconds, 1)) }));
    await step('bulk-rev-1c', one, async (t) => ({ ...(await bulk(t, seconds, 1, true)) }));
    await step('bulk-2c', two, async (t) => ({ ...(await bulk(t, seconds, 8)) }));
    await step('conn-1c', one, async (t) => ({ ...(await connectionRate(t, seconds, 32)) }));
    await step('conn-2c', two, async (t) => ({ ...(await connectionRate(t, seconds, 64)) }));
    await step('pingpong-1c', one, async (t) => ({ ...(await pingPong(t, seconds)) }));
    if (wanted('proxy-v2-1c')) {
      // One backend (bench/tiny-http.ts) takes the header or not, so only the proxy's work differs.
      // Runs alternate off-on-on-off-off-on…: each off/on pair is adjacent in time, so drift on
      // this shared machine cancels within a pair, and every pair is one sample of the cost.
      for (const t of proxies) {
        for (let pair = 0; pair < ppPairs; pair++) {
          const order = pair % 2 === 0 ? ['off', 'on'] : ['on', 'off'];
          const got: Record<string, Awaited<ReturnType<typeof connectionRate>>> = {};
          for (const which of order) got[which] = await connectionRate(t, seconds, 32, which === 'on' ? t.ports.eitherProxied : t.ports.either);
          const off = got.off!;
          const on = got.on!;
          const result = { off: off.connPerSec, on: on.connPerSec, cost: 1 - on.connPerSec / off.connPerSec, cpuCost: on.cpuUsPerConn / off.cpuUsPerConn - 1, errors: off.errors + on.errors };
          for (const [metric, value] of Object.entries(result)) record(samples, `proxy-v2-1c:${metric}`, t.name, value);
          process.stderr.write(`  proxy-v2-1c ${t.name} pair ${pair + 1}: ${JSON.stringify(result)}\n`);
        }
      }
    }
    if (wanted('idle-1c')) {
      // A fresh process each time: garbage left by the load tests would blur the RSS delta.
      const kinds = [...ioModes.map((io) => ['edge', io] as const), ['haproxy', undefined] as const, ['nginx', undefined] as const];
      for (const [kind, io] of kinds) {
        const fresh = await startTarget(kind, 1, base + 800, backends.ports, dir, io);
        try {
          const result = await idleMemory(fresh, idleCount);
          record(samples, 'idle-1c:bytesPerConnection', fresh.name, result.bytesPerConnection);
          process.stderr.write(`  idle-1c ${fresh.name}: ${JSON.stringify(result)}\n`);
        } finally {
          await fresh.stop();
        }
      }
    }
  }
  for (const stop of stoppers.splice(1).reverse()) await stop();
  if (wanted('reconfig')) {
    process.stderr.write(`reconfig: ${changes} changes under load\n`);
    reconfig = await reconfigUnderLoad(dir, base + 700, backends.ports.echo, backends.echo2, changes);
    process.stderr.write(`  ${JSON.stringify(reconfig)}\n`);
  }
  if (wanted('redis')) redis = await runRedisBench(redisOptions, log);
} finally {
  for (const stop of stoppers.reverse()) await stop().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
}

const loadAfter = loadAverage();
const out: string[] = [
  `## Run: ${new Date().toISOString()}, ${rounds} rounds × ${seconds} s`,
  '',
  '```',
  ...Object.entries(machine).map(([k, v]) => `${k}: ${v}`),
  `load average (1, 5, 15 min): ${loadBefore} before, ${loadAfter} after`,
  '```',
  '',
];
const show = (key: string, title: string, unit: string, cores: 1 | 2): void => {
  const list = rows(samples, key, cores === 1 ? 'haproxy-1t' : 'haproxy-2t', cores === 1 ? 'direct' : 'direct-2c');
  if (list.length > 0) out.push(table(title, unit, list));
};
show('bulk-1c:gbps', 'Bulk, 1 stream, proxy on CPU1 (iperf3)', 'Gbit/s', 1);
show('bulk-1c:gbitPerCpuSecond', 'Bulk efficiency, 1 core', 'Gbit per CPU-s', 1);
show('bulk-rev-1c:gbps', 'Bulk reverse (backend → client, iperf3 -R), 1 stream, proxy on CPU1', 'Gbit/s', 1);
show('bulk-2c:gbps', 'Bulk, 8 streams, 2 workers/threads unpinned', 'Gbit/s', 2);
show('conn-1c:connPerSec', 'New connections, wrk -t1 -c32 Connection: close, 1 core', 'conn/s', 1);
show('conn-1c:p99ms', 'Connection p99 latency under that load, 1 core', 'ms', 1);
show('conn-1c:cpuUsPerConn', 'Proxy CPU per connection, 1 core', 'µs', 1);
show('conn-1c:errors', 'Socket errors + non-2xx, 1 core', 'count', 1);
show('conn-2c:connPerSec', 'New connections, wrk -t2 -c64, 2 workers/threads', 'conn/s', 2);
show('conn-2c:p99ms', 'Connection p99 latency, 2 workers/threads', 'ms', 2);
show('pingpong-1c:p50us', 'Ping-pong 64 B, sockperf half-RTT p50, 1 core', 'µs', 1);
show('pingpong-1c:p99us', 'Ping-pong 64 B, p99, 1 core', 'µs', 1);
show('pingpong-1c:p999us', 'Ping-pong 64 B, p99.9, 1 core', 'µs', 1);
const showCost = (key: string, title: string): void => {
  const list = rows(samples, key, 'haproxy-1t', undefined);
  if (list.length > 0) out.push(costTable(title, list));
};
showCost('proxy-v2-1c:cost', `PROXY header cost in conn/s (1 − on/off, adjacent pairs, ${ppPairs} per round; nginx sends v1), 1 core`);
showCost('proxy-v2-1c:cpuCost', 'PROXY header cost in proxy CPU per connection (on/off − 1, same pairs), 1 core');
show('idle-1c:bytesPerConnection', `RSS per idle proxied connection (${idleCount} held)`, 'bytes', 1);
if (reconfig !== undefined) {
  out.push(
    '### Reconfiguration under load (edge, 2 workers)',
    '',
    `${reconfig.changes} changes; ${reconfig.connections} short connections, ${reconfig.failures} failed; ` +
      `4 long-lived connections, ${reconfig.longLivedRoundTrips} round trips, ${reconfig.longLivedFailures} failed; ` +
      `change live after p50 ${reconfig.liveP50ms.toFixed(1)} ms, p99 ${reconfig.liveP99ms.toFixed(1)} ms, max ${reconfig.liveMaxMs.toFixed(1)} ms` +
      (reconfig.errors.length ? `; errors: ${reconfig.errors.join('; ')}` : ''),
    '',
  );
}
if (redis !== undefined) out.push(redisTable(redis, redisOptions));
process.stdout.write(`${out.join('\n')}\n`);
if (flags.json !== undefined) {
  const raw = Object.fromEntries([...samples].map(([k, m]) => [k, Object.fromEntries(m)]));
  await writeFile(flags.json, `${JSON.stringify({ machine, rounds, seconds, idleCount, samples: raw, reconfig, redis }, null, 2)}\n`);
}
