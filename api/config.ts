// The server's configuration, read once from the environment and the command line by the
// entry point; components receive the parts they need and never read process.env.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { PierError } from './pier-error.js';

export type Role = 'api' | 'edge';

export interface ServerConfig {
  roles: Role[];
  api: { host: string; port: number };
  dataDir: string;
  databaseUrl: string | undefined;
  dockerSocket: string;
  /** The shared addresses every endpoint is served on. */
  edge: { ipv4: string | null; ipv6: string | null; drainTimeoutMs: number };
  /** Where the local CLI configuration lives (written on first start). */
  cliConfigFile: string;
  logLevel: string;
  /** Reconcile passes that run at once (PIER_RECONCILE_CONCURRENCY); below the database pool's size. */
  reconcileConcurrency: number;
}

/** The database pool holds 10 connections: reconciles leave at least two to the API. */
export const MAX_RECONCILE_CONCURRENCY = 8;

export interface ServerFlags {
  apiListen?: string | undefined;
  dataDir?: string | undefined;
  role?: string | undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv, flags: ServerFlags = {}): ServerConfig {
  const api = parseListen(flags.apiListen ?? env.PIER_API_LISTEN ?? '127.0.0.1:7700');
  const dataDir = resolve(flags.dataDir ?? env.PIER_DATA_DIR ?? '.pier');
  return {
    roles: parseRoles(flags.role ?? env.PIER_ROLE ?? 'all'),
    api,
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    dockerSocket: parseDockerHost(env.DOCKER_HOST),
    edge: {
      ipv4: optionalAddress(env.PIER_EDGE_IPV4, '127.0.0.1'),
      ipv6: optionalAddress(env.PIER_EDGE_IPV6, '::1'),
      drainTimeoutMs: 30_000,
    },
    cliConfigFile: cliConfigPath(env),
    logLevel: env.PIER_LOG_LEVEL ?? 'info',
    reconcileConcurrency: parseConcurrency(env.PIER_RECONCILE_CONCURRENCY),
  };
}

function parseConcurrency(value: string | undefined): number {
  if (value === undefined || value === '') return 4;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_RECONCILE_CONCURRENCY) {
    throw new PierError('E_CONFIG_INVALID', `PIER_RECONCILE_CONCURRENCY "${value}" is not a whole number from 1 to ${MAX_RECONCILE_CONCURRENCY}`, {
      status: 400,
      hint: `reconciles share the database pool (10 connections) with the API: use 1 to ${MAX_RECONCILE_CONCURRENCY} (default 4)`,
    });
  }
  return n;
}

/** `$XDG_CONFIG_HOME/pier/config.json`, falling back to `~/.config`. */
export function cliConfigPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'pier', 'config.json');
}

export function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(m?.[3]);
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new PierError('E_CONFIG_INVALID', `cannot read listen address "${value}"`, {
      status: 400,
      hint: 'use HOST:PORT, e.g. 127.0.0.1:7700 or [::1]:7700',
    });
  }
  return { host: (m[1] ?? m[2]) as string, port };
}

function parseRoles(value: string): Role[] {
  if (value === 'all') return ['api', 'edge'];
  const roles = value.split(',').map((r) => r.trim());
  for (const r of roles) {
    if (r !== 'api' && r !== 'edge') {
      throw new PierError('E_CONFIG_INVALID', `unknown role "${r}"`, { status: 400, hint: 'use api, edge or all' });
    }
  }
  return roles as Role[];
}

function parseDockerHost(value: string | undefined): string {
  if (!value) return '/var/run/docker.sock';
  if (value.startsWith('unix://')) return value.slice('unix://'.length);
  throw new PierError('E_CONFIG_INVALID', `DOCKER_HOST "${value}" is not supported`, {
    status: 400,
    hint: 'Pier talks to Docker over a unix socket: set DOCKER_HOST=unix:///path/to/docker.sock',
  });
}

/** An address setting; "off" or "" disables that family. */
function optionalAddress(value: string | undefined, fallback: string): string | null {
  if (value === undefined) return fallback;
  if (value === '' || value === 'off') return null;
  return value;
}
