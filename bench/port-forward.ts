// `npm run bench:port-forward [-- --mib 256 --rounds 3 --pings 2000]`: `pier port-forward` (the
// real CLI process, the real API and its WebSocket tunnel) against a direct connection to the same
// backend, in one run, rounds alternating: bulk throughput each way, round-trip latency of 64-byte
// ping-pongs on one connection, and the time to open a connection and get its first echo. The API
// runs in this process on the in-memory runtime, whose connect() is pointed at loopback backends
// (a sink that answers the byte count, a source, an echo): what is measured is the tunnel, not Docker.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../api/config.js';
import { createMemoryRuntime } from '../api/runtime/memory-runtime.js';
import { connectTcp } from '../api/runtime/tcp-connect.js';
import { startServer } from '../api/server.js';
import { median } from './summary.js';

const { values: flags } = parseArgs({ options: { mib: { type: 'string', default: '256' }, rounds: { type: 'string', default: '3' }, pings: { type: 'string', default: '2000' }, opens: { type: 'string', default: '200' } } });
const MIB = 1024 * 1024;
const bytes = Number(flags.mib) * MIB;
const rounds = Number(flags.rounds);
const pings = Number(flags.pings);
const opens = Number(flags.opens);
const log = (line: string) => process.stderr.write(`${line}\n`);
const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const IMAGE = 'pier-test/busybox:1';

async function listen(handler: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    // Clients end pings and opens with a reset.
    s.on('error', () => undefined);
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  return (server.address() as AddressInfo).port;
}

/** Backends: 8080 echo, 8081 sink (answers the count at the end), 8082 source (sends `bytes`, then FIN). */
async function backends(): Promise<Map<number, number>> {
  const echo = await listen((s) => s.pipe(s));
  const sink = await listen((s) => {
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    s.on('end', () => s.end(String(n)));
  });
  const chunk = Buffer.alloc(MIB, 7);
  const source = await listen((s) => {
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.on('data', () => undefined);
    pump();
  });
  return new Map([[8080, echo], [8081, sink], [8082, source]]);
}

function upload(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunk = Buffer.alloc(MIB, 9);
    let sent = 0;
    let answer = '';
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    s.once('connect', pump);
    s.on('data', (c: Buffer) => (answer += c.toString()));
    s.on('end', () => {
      s.destroy();
      if (Number(answer) !== bytes) return reject(new Error(`sink read ${answer} bytes, not ${bytes}`));
      resolve(bytes / MIB / (Number(process.hrtime.bigint() - start) / 1e9));
    });
    s.on('error', reject);
  });
}

function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = 0;
    s.on('data', (c: Buffer) => (got += c.length));
    s.on('end', () => {
      s.end();
      if (got !== bytes) return reject(new Error(`read ${got} bytes, not ${bytes}`));
      resolve(bytes / MIB / (Number(process.hrtime.bigint() - start) / 1e9));
    });
    s.on('error', reject);
  });
}

/** Median round trip (µs) of 64-byte ping-pongs on one connection. */
async function pingPong(port: number): Promise<number> {
  const s = await connectTcp('127.0.0.1', port, 5000);
  const ping = Buffer.alloc(64, 1);
  const times: number[] = [];
  for (let i = 0; i < pings; i++) {
    const start = process.hrtime.bigint();
    s.write(ping);
    let got = 0;
    await new Promise<void>((resolve) => {
      const on = (c: Buffer) => {
        got += c.length;
        if (got >= 64) {
          s.off('data', on);
          resolve();
        }
      };
      s.on('data', on);
    });
    times.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  s.destroy();
  return median(times);
}

/** Median time (ms) to connect and get the first echo back, one connection at a time. */
async function openTime(port: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < opens; i++) {
    const start = process.hrtime.bigint();
    const s = await connectTcp('127.0.0.1', port, 5000);
    s.write('x');
    await new Promise((r) => s.once('data', r));
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    s.destroy();
  }
  return median(times);
}

async function portForward(env: NodeJS.ProcessEnv, remote: number): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(process.execPath, [PIER_BIN, 'port-forward', '--app', 'bench', `0:${remote}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString();
      const m = /forwarding 127\.0\.0\.1:(\d+) /.exec(err);
      if (m) resolve(Number(m[1]));
    });
    child.once('close', (code) => reject(new Error(`port-forward exited ${code}: ${err}`)));
  });
  return { port, child };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-bench-pf-'));
  const ports = await backends();
  const memory = createMemoryRuntime({ images: [IMAGE] });
  // The tunnel's far end dials the loopback backend that stands for the container port.
  const runtime = { ...memory, connect: (_address: string, port: number, o: { timeoutMs: number; allowHalfOpen?: boolean }) => connectTcp('127.0.0.1', ports.get(port) ?? 1, o.timeoutMs, o.allowHalfOpen) };
  const config = loadConfig({ PIER_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), PIER_API_LISTEN: '127.0.0.1:0', PIER_REGISTRY: 'off' }, { role: 'api' });
  const server = await startServer(config, pino({ level: 'warn' }), { runtime });
  const children: ChildProcess[] = [];
  try {
    const token = (await import('node:fs')).readFileSync(server.adminTokenFile, 'utf8').trim();
    const manifest = [
      'app = "bench"', `image = "${IMAGE}"`, '[processes.web]', 'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]', 'count = 1',
      ...[8080, 8081, 8082].flatMap((p) => ['[[endpoints]]', 'process = "web"', `port = ${p}`, `target = ${p}`, 'access = "private"']),
    ].join('\n');
    const res = await fetch(`${server.apiUrl}/v1/deploys`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ manifest }) });
    if (res.status !== 201) throw new Error(`deploy: ${res.status} ${await res.text()}`);
    for (let i = 0; i < 200; i++) {
      const r = await fetch(`${server.apiUrl}/v1/apps/bench/connect?port=8080`, { headers: { authorization: `Bearer ${token}` } });
      if (r.ok) break;
      await new Promise((r2) => setTimeout(r2, 100));
    }
    const env = { ...process.env, PIER_API_URL: server.apiUrl, PIER_TOKEN: token, XDG_CONFIG_HOME: join(dir, 'config') };
    const tunnel = new Map<number, number>();
    for (const p of [8080, 8081, 8082]) {
      const f = await portForward(env, p);
      children.push(f.child);
      tunnel.set(p, f.port);
    }
    const results: Record<string, { direct: number[]; tunnel: number[] }> = {};
    const add = (k: string, via: 'direct' | 'tunnel', v: number) => ((results[k] ??= { direct: [], tunnel: [] })[via].push(v));
    for (let round = 1; round <= rounds; round++) {
      // Alternate which goes first, so a drift of the machine falls on both.
      const order: ('direct' | 'tunnel')[] = round % 2 ? ['direct', 'tunnel'] : ['tunnel', 'direct'];
      for (const via of order) {
        const at = (p: number) => (via === 'direct' ? (ports.get(p) as number) : (tunnel.get(p) as number));
        add('upload MB/s', via, await upload(at(8081)));
        add('download MB/s', via, await download(at(8082)));
        add('round trip µs (64 B)', via, await pingPong(at(8080)));
        add('open + first echo ms', via, await openTime(at(8080)));
        log(`round ${round} ${via} done`);
      }
    }
    const lines = [
      `port-forward vs direct, ${flags.mib} MiB per transfer, ${rounds} rounds, ${pings} ping-pongs, ${opens} opens (medians; ratio = tunnel / direct)`,
      '',
      '| measure | direct | port-forward | ratio |',
      '| --- | ---: | ---: | ---: |',
      ...Object.entries(results).map(([k, v]) => {
        const d = median(v.direct);
        const t = median(v.tunnel);
        return `| ${k} | ${d.toFixed(1)} | ${t.toFixed(1)} | ${(t / d).toFixed(2)} |`;
      }),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
