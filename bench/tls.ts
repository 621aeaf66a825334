// `npm run bench -- --only tls`: TLS termination, Pier's edge (one worker, pinned to CPU1) against
// HAProxy `ssl crt` (one thread, pinned to CPU1) on the same P-256 certificate and cipher list (the
// edge's MODERN_CIPHERS: without it HAProxy picks AES-256-GCM, the edge AES-128-GCM), in the same run,
// round-robin: full handshakes/s and resumed handshakes/s (`openssl s_time -new` / `-reuse`, TLS
// 1.2 so both resume by ticket the same way, each connection carrying one tiny request to the
// backend and its answer; the client pinned to CPU0) and bulk throughput (a
// node:tls client reading what a backend streams through the proxy for S seconds). Reported as
// medians and edge/HAProxy ratios per round; the load average says how busy the machine was.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { waitForPorts } from './backends.js';
import { cpuSeconds, processTree, run, startDaemon, type Daemon } from './tools.js';
import { PROXY_CPU } from './targets.js';
import { MODERN_CIPHERS } from '../proxy/tls/certificate-picker.js';

const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface TlsBenchOptions {
  rounds: number;
  seconds: number;
  base: number;
}

export interface TlsBenchResult {
  /** Per target: per round values. */
  full: Record<string, number[]>;
  resumed: Record<string, number[]>;
  /** Mbit/s */
  bulk: Record<string, number[]>;
  /** Handshakes per CPU-second of the proxy process (its own threads only). */
  fullPerCpu: Record<string, number[]>;
  resumedPerCpu: Record<string, number[]>;
}

export async function runTlsBench(dir: string, options: TlsBenchOptions, log: (line: string) => void): Promise<TlsBenchResult> {
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.pem', '-subj', '/CN=bench.example.test', '-days', '2', '-addext', 'subjectAltName=DNS:bench.example.test']);
  const cert = execFileSync('cat', [join(dir, 'tls.pem')], { encoding: 'utf8' });
  const key = execFileSync('cat', [join(dir, 'tls.key')], { encoding: 'utf8' });
  await writeFile(join(dir, 'haproxy.pem'), cert + key);

  // Backends: one that answers a request with a few bytes and closes (handshakes), one that streams.
  const chunk = Buffer.alloc(64 * 1024, 7);
  const answer = Buffer.from('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const hold = net.createServer((s) => {
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      if (got.includes('\r\n\r\n')) s.end(answer);
    });
  });
  const source = net.createServer((s) => {
    s.on('error', () => undefined);
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  const listen = (srv: net.Server): Promise<number> => new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port)));
  const holdPort = await listen(hold);
  const sourcePort = await listen(source);

  const edgePorts = { hold: options.base, source: options.base + 1 };
  const haPorts = { hold: options.base + 2, source: options.base + 3 };
  const snapshot = {
    version: 1,
    certificates: [{ id: 'bench', names: ['bench.example.test'], cert, key }],
    endpoints: [
      [edgePorts.hold, holdPort],
      [edgePorts.source, sourcePort],
    ].map(([port, backend]) => ({
      id: `tls/${port}`,
      app: 'bench',
      bind: [{ address: '127.0.0.1', port }],
      proxyProtocol: 'none',
      backends: [{ id: 'b', address: '127.0.0.1', port: backend }],
      tls: 'terminate',
      terminate: { certificates: ['bench'] },
    })),
  };
  await writeFile(join(dir, 'edge-tls.json'), JSON.stringify(snapshot));
  await writeFile(
    join(dir, 'haproxy-tls.cfg'),
    `global
  nbthread 1
  maxconn 9000
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-default-bind-ciphers ${MODERN_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_')).join(':')}
  ssl-default-bind-ciphersuites ${MODERN_CIPHERS.split(':').filter((c) => c.startsWith('TLS_')).join(':')}
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
${[
  [haPorts.hold, holdPort],
  [haPorts.source, sourcePort],
]
  .map(([port, backend]) => `listen t${port}\n  bind 127.0.0.1:${port} ssl crt ${join(dir, 'haproxy.pem')}\n  server s1 127.0.0.1:${backend}\n`)
  .join('\n')}`,
  );
  const daemons: Daemon[] = [
    startDaemon(process.execPath, [PIER_BIN, 'edge', '--config', join(dir, 'edge-tls.json'), '--workers', '1', '--admin-listen', '127.0.0.1:0', '--data-dir', join(dir, 'edge-data')], { cpu: PROXY_CPU, env: { ...process.env, PIER_LOG_LEVEL: 'warn' } }),
    startDaemon('haproxy', ['-db', '-f', join(dir, 'haproxy-tls.cfg')], { cpu: PROXY_CPU }),
  ];
  const result: TlsBenchResult = {
    full: { edge: [], haproxy: [] },
    resumed: { edge: [], haproxy: [] },
    bulk: { edge: [], haproxy: [] },
    fullPerCpu: { edge: [], haproxy: [] },
    resumedPerCpu: { edge: [], haproxy: [] },
  };
  try {
    await waitForPorts([edgePorts.hold, edgePorts.source, haPorts.hold, haPorts.source], daemons);
    const targets: [string, { hold: number; source: number }, Daemon][] = [
      ['edge', edgePorts, daemons[0]!],
      ['haproxy', haPorts, daemons[1]!],
    ];
    for (let round = 0; round < options.rounds; round++) {
      // Alternate which goes first, so a drift in load does not favour one.
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const [name, ports, daemon] of order) {
        // The proxy's CPU time per handshake (every thread, from the scheduler): what one core
        // would sustain when busy, steadier than the rate on a shared machine (the client runs
        // one handshake at a time, so its rate also waits on the scheduler).
        const pids = processTree(daemon.child.pid!);
        let cpu = cpuSeconds(pids);
        const newRun = await sTime(ports.hold, '-new', options.seconds);
        const fullCpu = cpuSeconds(pids) - cpu;
        cpu = cpuSeconds(pids);
        const reuse = await sTime(ports.hold, '-reuse', options.seconds);
        const resumedCpu = cpuSeconds(pids) - cpu;
        const full = newRun.rate;
        const resumed = reuse.rate;
        result.fullPerCpu[name]!.push(newRun.count / fullCpu);
        result.resumedPerCpu[name]!.push(reuse.count / resumedCpu);
        const mbit = await bulkRead(ports.source, options.seconds);
        result.full[name]!.push(full);
        result.resumed[name]!.push(resumed);
        result.bulk[name]!.push(mbit);
        log(
          `tls round ${round + 1} ${name}: ${full.toFixed(0)} full/s (${result.fullPerCpu[name]!.at(-1)!.toFixed(0)} per CPU-s), ${resumed.toFixed(0)} resumed/s (${result.resumedPerCpu[name]!.at(-1)!.toFixed(0)} per CPU-s, ${(reuse.resumedShare * 100).toFixed(1)}% resumed), ${mbit.toFixed(0)} Mbit/s, load ${loadAverage()}`,
        );
      }
    }
  } finally {
    for (const d of daemons) await d.stop();
    hold.close();
    source.close();
  }
  return result;
}

const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ')[0]!;

/** Handshakes per second of `openssl s_time` (client on CPU0), TLS 1.2 with tickets, each with one tiny request. */
async function sTime(port: number, mode: '-new' | '-reuse', seconds: number): Promise<{ count: number; rate: number; resumedShare: number }> {
  const started = performance.now();
  // `-www /`: each connection also sends a request the backend answers, so both proxies connect the
  // backend and relay both ways. Without it HAProxy saw the client's close with its Finished and
  // never connected the backend (2 connects for 2478 handshakes, strace), while the edge did.
  const { stdout } = await run('taskset', ['-c', '0', 'openssl', 's_time', '-connect', `127.0.0.1:${port}`, '-www', '/', mode, '-time', String(seconds), '-tls1_2']);
  const elapsed = (performance.now() - started) / 1000;
  // "1234 connections in 6 real seconds": s_time's own "real seconds" are whole seconds of
  // time(NULL) (a 5 s run reads 5 or 6, up to 20% either way at random), so the wall clock here
  // divides instead (it also counts the process start, the same few ms for both targets).
  const real = /(\d+) connections in (\d+) real seconds/.exec(stdout);
  if (real === null) throw new Error(`openssl s_time said: ${stdout.slice(-500)}`);
  // One mark per connection: `r` when the session was resumed, `*` when it was a full handshake.
  const marks = stdout
    .split('\n')
    .filter((l) => /^[r*]+$/.test(l))
    .join('');
  const resumed = [...marks].filter((c) => c === 'r').length;
  return { count: Number(real[1]), rate: Number(real[1]) / elapsed, resumedShare: marks.length === 0 ? 0 : resumed / marks.length };
}

/** Mbit/s one node:tls client reads through the proxy in `seconds`. */
function bulkRead(port: number, seconds: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    let started = 0;
    const c = tls.connect({ host: '127.0.0.1', port, servername: 'bench.example.test', rejectUnauthorized: false }, () => {
      started = performance.now();
      setTimeout(() => {
        const ms = performance.now() - started;
        c.destroy();
        resolve((bytes * 8) / 1e6 / (ms / 1000));
      }, seconds * 1000);
    });
    c.on('data', (b: Buffer) => {
      if (started > 0) bytes += b.length;
    });
    c.on('error', reject);
  });
}

export function tlsTable(r: TlsBenchResult): string {
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const ratios = (xs: number[], ys: number[]): number[] => xs.map((x, i) => x / ys[i]!);
  const line = (what: string, m: Record<string, number[]>, unit: string, goal: string): string => {
    const rs = ratios(m.edge!, m.haproxy!);
    return `| ${what} | ${median(m.edge!).toFixed(0)} ${unit} | ${median(m.haproxy!).toFixed(0)} ${unit} | ${median(rs).toFixed(2)}x (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}) | ${goal} |`;
  };
  return [
    '| TLS, one core | edge (median) | HAProxy ssl crt (median) | edge / HAProxy, same round (median, min–max) | goal |',
    '|---|---|---|---|---|',
    line('full handshakes (TLS 1.2, P-256)', r.full, '/s', '>= 0.8x'),
    line('resumed handshakes (ticket)', r.resumed, '/s', '>= 0.8x'),
    line('bulk, one stream', r.bulk, 'Mbit/s', '>= 0.9x'),
    line('full handshakes per CPU-second of the proxy', r.fullPerCpu, '', '(>= 0.8x)'),
    line('resumed handshakes per CPU-second of the proxy', r.resumedPerCpu, '', '(>= 0.8x)'),
    '',
  ].join('\n');
}
