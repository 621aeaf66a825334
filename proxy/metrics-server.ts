// The standalone edge's admin HTTP server (loopback by default): Prometheus text at /metrics,
// readiness at /healthz, and a JSON /status naming the version, listeners and worker pids.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { renderMetrics, type AdminSnapshot } from './edge-metrics-text.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Gathers the current state (asks every worker); called per request. */
  collect: () => Promise<AdminSnapshot>;
}

export interface AdminServer {
  /** e.g. http://127.0.0.1:9901 */
  url: string;
  close(): Promise<void>;
}

export function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    void handle(req.url ?? '/', options).then(
      ({ status, type, body }) => {
        res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        options.log.error({ err }, 'admin request failed');
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end('internal error\n');
      },
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${options.host}:${options.port} for the admin server: ${err.code ?? err.message}`, { cause: err })));
    server.listen({ host: options.host, port: options.port, ipv6Only: options.host.includes(':') }, () => {
      const addr = server.address() as AddressInfo;
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      resolve({
        url: `http://${host}:${addr.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

async function handle(url: string, options: AdminServerOptions): Promise<{ status: number; type: string; body: string }> {
  const path = url.split('?')[0];
  if (path === '/metrics') {
    return { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: renderMetrics(await options.collect()) };
  }
  if (path === '/healthz') {
    const s = await options.collect();
    // Ready: serving a snapshot with every configured worker answering.
    const ready = s.control.version !== null && s.reports.length === s.workers;
    return { status: ready ? 200 : 503, type: 'text/plain', body: ready ? 'ok\n' : 'not ready\n' };
  }
  if (path === '/status') {
    const s = await options.collect();
    const first = s.reports[0];
    const body = {
      version: s.control.version,
      source: s.control.source,
      applies: s.control.applies,
      lastError: s.control.lastError,
      io: first?.status.io ?? null,
      listeners: first?.status.listeners ?? [],
      workers: s.reports.map((r) => ({ pid: r.pid, version: r.status.version, connections: r.status.backends.reduce((n, b) => n + b.active, 0) })),
      workersExpected: s.workers,
      restarts: s.restarts,
    };
    return { status: 200, type: 'application/json', body: `${JSON.stringify(body, null, 2)}\n` };
  }
  return { status: 404, type: 'text/plain', body: 'not found: try /metrics, /healthz or /status\n' };
}
