// One measurement against one target: bulk throughput (iperf3), connection rate and latency
// (wrk, `Connection: close`), 64-byte ping-pong (sockperf), memory per idle connection (Node
// client). Every run is bounded in time; proxy CPU comes from /proc around the run.

import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { Target } from './targets.js';
import { cpuSeconds, rssBytes, run } from './tools.js';

/** Where the load generator runs: CPU0 in 1-core runs, anywhere otherwise. */
function pinned(target: Target, cmd: string, args: string[]): [string, string[]] {
  return target.cores === 1 ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args];
}

async function withCpu<T>(target: Target, work: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const pids = target.pids();
  const before = cpuSeconds(pids);
  const value = await work();
  return { value, cpu: cpuSeconds(pids) - before };
}

export interface BulkResult {
  gbps: number;
  /** Gbit moved per CPU-second of the proxy (NaN for direct). */
  gbitPerCpuSecond: number;
}

/** iperf3 through the target; `reverse`: the server sends (backend → client) instead of the client. */
export async function bulk(target: Target, seconds: number, streams: number, reverse = false): Promise<BulkResult> {
  const flags = ['-c', '127.0.0.1', '-p', String(target.ports.iperf), '-t', String(seconds), '-P', String(streams), '-J', ...(reverse ? ['-R'] : [])];
  const [cmd, args] = pinned(target, 'iperf3', flags);
  const { value, cpu } = await withCpu(target, () => run(cmd, args, { timeout: (seconds + 20) * 1000, maxBuffer: 64 << 20 }));
  const report = JSON.parse(value.stdout) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = report.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 through ${target.name}: ${report.error ?? value.stdout.slice(0, 500)}`);
  const gbit = (bps * seconds) / 1e9;
  return { gbps: bps / 1e9, gbitPerCpuSecond: target.kind === 'direct' ? NaN : gbit / cpu };
}

export interface ConnResult {
  connPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  cpuUsPerConn: number;
}

/** Closed-loop: wrk with `connections` concurrent connections, a new one per request. */
export async function connectionRate(target: Target, seconds: number, connections: number, port = target.ports.http): Promise<ConnResult> {
  const threads = target.cores === 1 ? 1 : 2;
  const [cmd, args] = pinned(target, 'wrk', ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '-H', 'Connection: close', `http://127.0.0.1:${port}/`]);
  const { value, cpu } = await withCpu(target, () => run(cmd, args, { timeout: (seconds + 30) * 1000 }));
  const out = value.stdout;
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const total = Number(/(\d+) requests in/.exec(out)?.[1]);
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(rate)) throw new Error(`wrk through ${target.name}: ${out}\n${value.stderr}`);
  return {
    connPerSec: rate,
    p50ms: latencyMs(out, '50%'),
    p99ms: latencyMs(out, '99%'),
    errors: (errs ? errs.slice(1).reduce((n, v) => n + Number(v), 0) : 0) + non2xx,
    cpuUsPerConn: target.kind === 'direct' ? NaN : (cpu * 1e6) / total,
  };
}

function latencyMs(out: string, pct: string): number {
  const m = new RegExp(`^\\s*${pct}\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

export interface PingPongResult {
  /** Half round-trip (sockperf's latency), µs. */
  p50us: number;
  p99us: number;
  p999us: number;
}

export async function pingPong(target: Target, seconds: number): Promise<PingPongResult> {
  const [cmd, args] = pinned(target, 'sockperf', ['pp', '--tcp', '-i', '127.0.0.1', '-p', String(target.ports.sockperf), '-m', '64', '-t', String(seconds)]);
  const { stdout } = await run(cmd, args, { timeout: (seconds + 20) * 1000, maxBuffer: 16 << 20 });
  const pct = (p: string): number => Number(new RegExp(`percentile ${p.replace('.', '\\.')}\\s*=\\s*([\\d.]+)`).exec(stdout)?.[1]);
  const result = { p50us: pct('50.000'), p99us: pct('99.000'), p999us: pct('99.900') };
  if (!Number.isFinite(result.p99us)) throw new Error(`sockperf through ${target.name}: ${stdout.slice(-1500)}`);
  return result;
}

export interface IdleResult {
  connections: number;
  bytesPerConnection: number;
}

/** Opens `count` connections through the echo frontend, one round trip each, then reads RSS. */
export async function idleMemory(target: Target, count: number): Promise<IdleResult> {
  const pids = target.pids();
  await delay(500);
  const before = rssBytes(pids);
  const sockets: net.Socket[] = [];
  try {
    // 200 at a time, so the proxy's accept queue is never the limit.
    for (let i = 0; i < count; i += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, count - i) }, () => openEchoed(target.ports.echo)));
      sockets.push(...batch);
    }
    await delay(1000);
    const after = rssBytes(pids);
    return { connections: count, bytesPerConnection: (after - before) / count };
  } finally {
    for (const s of sockets) s.destroy();
    await delay(500);
  }
}

function openEchoed(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('x'));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no echo on 127.0.0.1:${port} within 10 s`));
    }, 10_000);
    socket.once('data', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
