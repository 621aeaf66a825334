// `pier server` in this process, wired as the binary wires it (real HTTP API, scheduler, health
// monitor, edge feed, PostgreSQL or PGlite) but on the in-memory runtime, for tests that need the
// whole control plane at scale without Docker. The in-process edge is off (no ports bound).
import type { TestContext } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { closeBeforeDrop } from './test-db.js';
import { loadConfig } from '../../api/config.js';
import { createMemoryRuntime, type MemoryRuntime, type MemoryRuntimeOptions } from '../../api/runtime/memory-runtime.js';
import { startServer, type RunningServer } from '../../api/server.js';
import type { Checkpoint } from '../../api/transactions.js';
import { seedPgliteDataDir } from './pglite-template.js';

export const MEMORY_IMAGE = 'pier-test/busybox:1';

export interface MemoryServer {
  server: RunningServer;
  runtime: MemoryRuntime;
  token: string;
  /** A request to the API with the admin token; a body is sent as JSON. */
  request(path: string, options?: { method?: string; body?: unknown }): Promise<Response>;
}

export interface MemoryServerOptions {
  /** A PostgreSQL URL, or undefined for the embedded database in the data folder. */
  databaseUrl: string | undefined;
  log: Logger;
  runtime?: MemoryRuntimeOptions;
  env?: Record<string, string>;
  checkpoint?: Checkpoint;
  resyncMs?: number;
  /** Run the start-up checks of a server whose edge is on this host (pool preflight). */
  localEdge?: boolean;
}

export async function startMemoryServer(options: MemoryServerOptions, t?: TestContext): Promise<MemoryServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-memory-server-'));
  const env: NodeJS.ProcessEnv = {
    PIER_DATA_DIR: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    PIER_API_LISTEN: '127.0.0.1:0',
    // The in-memory runtime builds nothing: no registry to run.
    PIER_REGISTRY: 'off',
    ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
    ...options.env,
  };
  if (!env.DATABASE_URL) await seedPgliteDataDir(env.PIER_DATA_DIR as string);
  const config = loadConfig(env, { role: 'api' });
  const runtime = createMemoryRuntime({ images: [MEMORY_IMAGE], ...options.runtime });
  const server = await startServer(config, options.log, { runtime, checkpoint: options.checkpoint, resyncMs: options.resyncMs, localEdge: options.localEdge });
  // Closed before its test database is dropped (test-db.ts), and after the test either way.
  const cleanup = closeBeforeDrop(options.databaseUrl, async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  if (t) t.after(cleanup);
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  return {
    server,
    runtime,
    token,
    request(path, req = {}) {
      const body = req.body === undefined ? undefined : JSON.stringify(req.body);
      return fetch(`${server.apiUrl}${path}`, {
        method: req.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body,
      });
    },
  };
}

/** A manifest of `count` echo servers behind one endpoint. */
export function memoryManifest(app: string, port: number, count = 2, env: Record<string, string> = {}): string {
  const vars = Object.entries(env).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  return [
    `app = "${app}"`,
    `image = "${MEMORY_IMAGE}"`,
    ...(vars.length ? [`env = { ${vars.join(', ')} }`] : []),
    '[processes.web]',
    'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]',
    `count = ${count}`,
    '[[endpoints]]',
    'process = "web"',
    `port = ${port}`,
    'target = 8080',
    '[deploy]',
    'drain = "0s"',
  ].join('\n');
}
