// The proxies under test, each started once per run on its own ports with the same topology:
// frontend base+0 → iperf3, +1 → tiny HTTP, +2 → sockperf, +3 → echo, +4 → tiny HTTP with a PROXY
// header (v2; nginx 1.22 can only send v1), +5 / +6 → the Node tiny HTTP without / with a header.
// The edge runs on either TCP I/O (--io); "bare" is bench/bare-proxy.ts on the same I/O (no PROXY
// header, so no +4/+6). "direct" has no proxy: its ports are the backends'.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BackendPorts } from './backends.js';
import { waitForPorts } from './backends.js';
import type { TcpIoMode } from '../proxy/tcp-io/tcp-io.js';
import { NGINX_STREAM_MODULE, processTree, startDaemon, type Daemon } from './tools.js';

export type TargetKind = 'direct' | 'edge' | 'bare' | 'haproxy' | 'nginx';

export interface Target {
  /** e.g. `edge-handle-1w`, `bare-socket-1w`, `haproxy-2t`. */
  name: string;
  kind: TargetKind;
  /** The TCP I/O of an edge or bare proxy. */
  io?: TcpIoMode;
  /** 1 = pinned to CPU1; 2 = two workers/threads, unpinned. */
  cores: 1 | 2;
  ports: BackendPorts & { httpProxied: number };
  /** Every process of the proxy (empty for direct). */
  pids(): number[];
  stop(): Promise<void>;
}

const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const BARE_BIN = fileURLToPath(new URL('./bare-proxy.js', import.meta.url));
export const PROXY_CPU = '1';

export function directTarget(backends: BackendPorts): Target {
  return { name: 'direct', kind: 'direct', cores: 1, ports: backends, pids: () => [], stop: async () => undefined };
}

function frontends(base: number): BackendPorts {
  return { iperf: base, http: base + 1, sockperf: base + 2, echo: base + 3, httpProxied: base + 4, either: base + 5, eitherProxied: base + 6 };
}

export async function startTarget(kind: Exclude<TargetKind, 'direct'>, cores: 1 | 2, base: number, backends: BackendPorts, dir: string, io: TcpIoMode = 'handle'): Promise<Target> {
  const withIo = kind === 'edge' || kind === 'bare';
  const name = `${kind}${withIo ? `-${io}` : ''}-${cores}${kind === 'haproxy' ? 't' : 'w'}`;
  const work = join(dir, name);
  await mkdir(work, { recursive: true });
  const fe = frontends(base);
  const pairs: [number, number, 'none' | 'v2'][] = [
    [fe.iperf, backends.iperf, 'none'],
    [fe.http, backends.http, 'none'],
    [fe.sockperf, backends.sockperf, 'none'],
    [fe.echo, backends.echo, 'none'],
    [fe.httpProxied, backends.httpProxied, 'v2'],
    [fe.either, backends.either, 'none'],
    [fe.eitherProxied, backends.eitherProxied, 'v2'],
  ];
  const cpu = cores === 1 ? PROXY_CPU : undefined;
  let daemon: Daemon;
  if (kind === 'edge') {
    const file = join(work, 'edge.json');
    await writeFile(file, JSON.stringify(edgeSnapshot(1, pairs)));
    const args = [PIER_BIN, 'edge', '--io', io, '--config', file, '--workers', String(cores), '--admin-listen', '127.0.0.1:0', '--data-dir', join(work, 'data')];
    daemon = startDaemon(process.execPath, args, { ...(cpu === undefined ? {} : { cpu }), env: { ...process.env, PIER_LOG_LEVEL: 'warn' } });
  } else if (kind === 'bare') {
    if (cores !== 1) throw new Error('the bare proxy runs on one core only');
    const plain = pairs.filter(([, , pp]) => pp === 'none').map(([listen, backend]) => `${listen}:${backend}`);
    daemon = startDaemon(process.execPath, [BARE_BIN, '--io', io, ...plain], { ...(cpu === undefined ? {} : { cpu }) });
  } else if (kind === 'haproxy') {
    const cfg = join(work, 'haproxy.cfg');
    await writeFile(cfg, haproxyConfig(cores, pairs));
    daemon = startDaemon('haproxy', ['-db', '-f', cfg], cpu === undefined ? {} : { cpu });
  } else {
    const cfg = join(work, 'nginx.conf');
    await mkdir(join(work, 'logs'), { recursive: true });
    await writeFile(cfg, nginxConfig(cores, pairs, work));
    daemon = startDaemon('nginx', ['-p', work, '-c', cfg], cpu === undefined ? {} : { cpu });
  }
  await waitForPorts([fe.http, fe.echo], [daemon]);
  const root = daemon.child.pid as number;
  return { name, kind, ...(withIo ? { io } : {}), cores, ports: fe, pids: () => processTree(root), stop: () => daemon.stop() };
}

export function edgeSnapshot(version: number, pairs: [number, number, 'none' | 'v2'][]): object {
  return {
    version,
    endpoints: pairs.map(([listen, backend, pp]) => ({
      id: `bench/${listen}`,
      app: 'bench',
      bind: [{ address: '127.0.0.1', port: listen }],
      proxyProtocol: pp,
      backends: [{ id: `b${backend}`, address: '127.0.0.1', port: backend }],
    })),
  };
}

function haproxyConfig(threads: number, pairs: [number, number, 'none' | 'v2'][]): string {
  const sections = pairs.map(
    ([listen, backend, pp]) => `
listen p${listen}
  bind 127.0.0.1:${listen}
  server s1 127.0.0.1:${backend}${pp === 'v2' ? ' send-proxy-v2' : ''}`,
  );
  return `global
  nbthread ${threads}
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
  timeout client-fin 10s
  timeout tunnel 1h
${sections.join('\n')}
`;
}

function nginxConfig(workers: number, pairs: [number, number, 'none' | 'v2'][], prefix: string): string {
  const servers = pairs.map(
    ([listen, backend, pp]) => `  server { listen 127.0.0.1:${listen} backlog=4096; proxy_pass 127.0.0.1:${backend};${pp === 'v2' ? ' proxy_protocol on;' : ''} }`,
  );
  return `load_module ${NGINX_STREAM_MODULE};
daemon off;
worker_processes ${workers};
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
stream {
${servers.join('\n')}
}
`;
}
