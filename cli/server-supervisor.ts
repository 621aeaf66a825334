// `pier server` (all roles) as a small supervisor: it runs the API (API, scheduler, health checks,
// database) as a child process (api-child.ts) and is itself the primary of the edge cluster,
// following the API's feed over HTTP like `pier edge --api` (proxy/edge-main.ts). The API can then
// restart, crash or be upgraded while the edge keeps serving its last snapshot and re-attaches to
// the feed; the edge's workers can be rolled without closing a listening socket. It lives beside
// the entry point because it composes two programs: api/ must not run the proxy, and proxy/
// imports nothing of ours. The command (commands/server.ts) owns signals and process.exit.

import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { ServerConfig } from '../api/config.js';
import { startEdgeMain, type RunningEdge } from '../proxy/edge-main.js';
import type { RollResult } from '../proxy/edge-pool.js';
import { createApiChild, type ApiReady } from './api-child.js';
import { apiFetch } from './api-transport.js';

export interface SupervisorOptions {
  config: ServerConfig;
  /** The program to fork for the API, and the arguments that make it `server --role api`. */
  apiModule: string;
  apiArgs: string[];
  env: NodeJS.ProcessEnv;
  /** Edge worker processes (a cluster even for one, so they can be rolled). */
  edgeWorkers: number;
  /** This edge's name in its reports (the host name by default). */
  edgeName: string;
  version: string;
  log: Logger;
  logLevel: string;
}

export interface RunningSupervisor {
  /** What the first API process said when it was ready. */
  api: ApiReady;
  /** The edge's admin server (metrics, healthz, status) on loopback. */
  edgeAdminUrl: string;
  /** `address` per shared family, bracketed for IPv6, as endpoints are served on. */
  edgeAddresses: string[];
  /** SIGHUP: a new API process (new code on disk); the edge serves on meanwhile. */
  restartApi(): Promise<void>;
  /** SIGUSR2: new edge workers, one at a time, on the same listening sockets. */
  rollEdge(): Promise<RollResult>;
  /** The API first (no new snapshot can arrive), then the edge drains. */
  stop(): Promise<void>;
}

export async function startServerSupervisor(options: SupervisorOptions): Promise<RunningSupervisor> {
  const { config, log } = options;
  let edge: RunningEdge | undefined;
  const api = createApiChild({
    modulePath: options.apiModule,
    args: options.apiArgs,
    listen: config.api,
    env: options.env,
    log: log.child({ component: 'supervisor' }),
    // A restarted API: the edge re-attaches now rather than when its backoff runs out.
    onReady: () => edge?.reconnect(),
  });
  const ready = await api.start();

  try {
    const token = (await readFile(ready.edgeTokenFile, 'utf8')).trim();
    edge = await startEdgeMain({
      // An HTTPS API (off loopback) is reached with its own certificate pinned.
      source: { kind: 'api', url: loopbackUrl(ready.apiUrl), token, fetch: (url, init) => apiFetch({ apiUrl: ready.apiUrl, fingerprint: ready.apiFingerprint }, String(url), init) },
      dataDir: config.dataDir,
      workers: options.edgeWorkers,
      cluster: true,
      name: options.edgeName,
      version: options.version,
      admin: { host: '127.0.0.1', port: 0 },
      drainTimeoutMs: config.edge.drainTimeoutMs,
      io: config.edge.io,
      log,
      logLevel: options.logLevel,
    });
  } catch (err) {
    await api.stop();
    throw err;
  }
  const running = edge;

  let stopping: Promise<void> | undefined;
  return {
    api: ready,
    edgeAdminUrl: edge.adminUrl,
    edgeAddresses: [config.edge.ipv4, config.edge.ipv6].filter((a): a is string => a !== null).map((a) => (a.includes(':') ? `[${a}]` : a)),
    restartApi: () => api.restart(),
    rollEdge: () => running.roll(),
    stop() {
      stopping ??= (async () => {
        await api.stop();
        await running.stop();
      })();
      return stopping;
    },
  };
}

/** The API's URL as the edge beside it reaches it: a wildcard listen address means loopback. */
export function loopbackUrl(apiUrl: string): string {
  const url = new URL(apiUrl);
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  else if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.toString().replace(/\/$/, '');
}
