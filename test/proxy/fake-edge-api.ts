// A real HTTP server standing in for the API's edge routes, for tests of the edge's side of the
// contract (EDGE-REPORT.md): `GET /v1/edge/watch` streams the snapshot it is given, and
// `POST /v1/edge/report` records every body and answers `{ ok, heartbeatMs }`. Bearer token checked.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import type { EdgeReport } from '../../proxy/edge-report.js';

export interface RecordedReport {
  authorization: string | undefined;
  body: EdgeReport;
}

export interface FakeEdgeApi {
  url: string;
  token: string;
  reports: RecordedReport[];
  /** Sends `config` to every open watch stream and to later ones. */
  publish(config: EdgeConfig): void;
  /** Resolves with the first report (from index `from` on) that `match` accepts; bounded by timeoutMs. */
  waitForReport(what: string, match: (r: EdgeReport) => boolean, from?: number, timeoutMs?: number): Promise<EdgeReport>;
  /** Stops answering: streams cut, port closed. */
  close(): Promise<void>;
}

export async function startFakeEdgeApi(t: TestContext, options: { snapshot: EdgeConfig; heartbeatMs: number; port?: number }): Promise<FakeEdgeApi> {
  const token = 'pier_test_edge_token';
  const streams = new Set<http.ServerResponse>();
  const reports: RecordedReport[] = [];
  const waiters = new Set<() => void>();
  let snapshot = options.snapshot;
  const event = (config: EdgeConfig): string => `event: config\nid: ${config.version}\ndata: ${JSON.stringify(config)}\n\n`;

  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"E_UNAUTHORIZED"}}');
      return;
    }
    if (req.method === 'GET' && req.url === '/v1/edge/watch') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.write(event(snapshot));
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/edge/report') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body: EdgeReport;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString()) as EdgeReport;
        } catch {
          res.writeHead(422).end();
          return;
        }
        reports.push({ authorization: req.headers.authorization, body });
        for (const wake of [...waiters]) wake();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, heartbeatMs: options.heartbeatMs }));
      });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: options.port ?? 0 }, resolve));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const res of streams) res.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  t.after(close);

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    reports,
    publish(config) {
      snapshot = config;
      for (const res of streams) res.write(event(config));
    },
    waitForReport(what, match, from = 0, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = reports.slice(from).find((r) => match(r.body));
          if (found === undefined) return false;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found.body);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no report ${what} within ${timeoutMs} ms; last: ${JSON.stringify(reports.at(-1)?.body ?? null).slice(0, 2000)}`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    close,
  };
}
