// The servers behind every proxy under test, all on loopback and pinned to CPU0 in the 1-core
// runs: iperf3 (bulk), sockperf (ping-pong), nginx http (tiny responses for the connection rate,
// plain and behind PROXY protocol), and an in-process Node echo (idle connections, reconfig).

import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startTinyHttp } from './tiny-http.js';
import { startDaemon, type Daemon } from './tools.js';

export interface BackendPorts {
  iperf: number;
  http: number;
  /** The same tiny HTTP server, expecting a PROXY header (v1 or v2) first. */
  httpProxied: number;
  /** A Node tiny HTTP server that takes a PROXY header or none (bench/tiny-http.ts)... */
  either: number;
  /** ...reached through a frontend that sends one (for backends, the same port as `either`). */
  eitherProxied: number;
  sockperf: number;
  echo: number;
}

export interface Backends {
  ports: BackendPorts;
  /** A second echo server, for the reconfiguration test's backend swaps. */
  echo2: number;
  stop(): Promise<void>;
}

export async function startBackends(dir: string, base: number, cpu: string): Promise<Backends> {
  const daemons: Daemon[] = [];
  const ports = { iperf: base + 1, http: base + 2, httpProxied: base + 3, sockperf: base + 4, echo: 0, either: 0, eitherProxied: 0 };
  daemons.push(startDaemon('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(ports.iperf)], { cpu }));
  daemons.push(startDaemon('sockperf', ['sr', '--tcp', '-i', '127.0.0.1', '-p', String(ports.sockperf)], { cpu }));

  const prefix = join(dir, 'nginx-http');
  await mkdir(join(prefix, 'logs'), { recursive: true });
  await writeFile(
    join(prefix, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  keepalive_timeout 0;
  server { listen 127.0.0.1:${ports.http} backlog=4096; location / { return 200 "ok\\n"; } }
  server { listen 127.0.0.1:${ports.httpProxied} proxy_protocol backlog=4096; location / { return 200 "ok\\n"; } }
}
`,
  );
  daemons.push(startDaemon('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf')], { cpu }));

  const servers = [await echoServer(), await echoServer(), await startTinyHttp()];
  ports.echo = (servers[0]?.address() as net.AddressInfo).port;
  ports.either = ports.eitherProxied = (servers[2]?.address() as net.AddressInfo).port;
  const echo2 = (servers[1]?.address() as net.AddressInfo).port;
  // iperf3 is not probed: a bare connection to its control port makes it log an error.
  await waitForPorts([ports.sockperf, ports.http, ports.httpProxied], daemons);
  await delay(300);
  return {
    ports,
    echo2,
    async stop() {
      for (const s of servers) s.close();
      await Promise.all(daemons.map((d) => d.stop()));
    },
  };
}

function echoServer(): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  const close = server.close.bind(server);
  server.close = ((cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  }) as typeof server.close;
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => resolve(server)));
}

/** Waits until every port accepts a connection (bounded: 100 × 100 ms). */
export async function waitForPorts(ports: number[], daemons: Daemon[] = []): Promise<void> {
  for (const port of ports) {
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (!ok) await delay(100);
    }
    if (!ok) throw new Error(`nothing listens on 127.0.0.1:${port}\n${daemons.map((d) => d.output()).join('\n')}`);
  }
}
