// The server's configuration, read once from the environment and the command line by the
// entry point; components receive the parts they need and never read process.env.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TcpIoChoice } from '../proxy/tcp-io/select-tcp-io.js';
import { PierError } from './pier-error.js';

export type Role = 'api' | 'edge';

export interface ServerConfig {
  roles: Role[];
  api: { host: string; port: number };
  dataDir: string;
  databaseUrl: string | undefined;
  dockerSocket: string;
  /**
   * The Docker network every instance joins (PIER_NETWORK, PIER_NETWORK_SUBNET): a bridge Pier
   * creates when missing and shares with every installation on the engine. The edge and the
   * checks reach instances at their address on it; no container port is published on the host.
   */
  network: { name: string; subnet: string };
  /**
   * The edge of `pier server` (all roles): the shared addresses every endpoint is served on, its
   * worker processes, its name in reports (undefined: the host name), drain and TCP I/O.
   */
  edge: { ipv4: string | null; ipv6: string | null; drainTimeoutMs: number; io: TcpIoChoice; workers: number; name: string | undefined };
  /** Where the local CLI configuration lives (written on first start). */
  cliConfigFile: string;
  logLevel: string;
  /** Largest request body the API accepts (PIER_BODY_LIMIT, --body-limit); undefined: the default. */
  bodyLimitBytes: number | undefined;
  /** Reconcile passes that run at once (PIER_RECONCILE_CONCURRENCY); below the database pool's size. */
  reconcileConcurrency: number;
  /**
   * Where volumes and snapshots live (PIER_VOLUMES_DIR, default `<data dir>/volumes`) and with
   * which driver (PIER_VOLUME_DRIVER: auto picks btrfs when the folder is on btrfs, else dir).
   */
  volumes: { dir: string; driver: 'auto' | 'dir' | 'btrfs' };
}

export const DEFAULT_NETWORK = 'pier';
export const DEFAULT_NETWORK_SUBNET = '198.19.0.0/16';

/** The database pool holds 10 connections: reconciles leave at least two to the API. */
export const MAX_RECONCILE_CONCURRENCY = 8;

export interface ServerFlags {
  apiListen?: string | undefined;
  dataDir?: string | undefined;
  role?: string | undefined;
  edgeWorkers?: string | undefined;
  edgeName?: string | undefined;
  bodyLimit?: string | undefined;
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
    network: { name: parseNetworkName(env.PIER_NETWORK), subnet: parseSubnet(env.PIER_NETWORK_SUBNET) },
    edge: {
      ipv4: optionalAddress(env.PIER_EDGE_IPV4, '127.0.0.1'),
      ipv6: optionalAddress(env.PIER_EDGE_IPV6, '::1'),
      drainTimeoutMs: 30_000,
      io: parseEdgeIo(env.PIER_EDGE_IO),
      workers: parseEdgeWorkers(flags.edgeWorkers ?? env.PIER_EDGE_WORKERS),
      name: parseEdgeName(flags.edgeName ?? env.PIER_EDGE_NAME),
    },
    cliConfigFile: cliConfigPath(env),
    logLevel: env.PIER_LOG_LEVEL ?? 'info',
    bodyLimitBytes: parseSize(flags.bodyLimit ?? env.PIER_BODY_LIMIT),
    reconcileConcurrency: parseConcurrency(env.PIER_RECONCILE_CONCURRENCY),
    volumes: { dir: resolve(env.PIER_VOLUMES_DIR ?? join(dataDir, 'volumes')), driver: parseVolumeDriver(env.PIER_VOLUME_DRIVER) },
  };
}

/** Docker's own rule for network names; `pier` unless set. */
function parseNetworkName(value: string | undefined): string {
  if (value === undefined || value === '') return DEFAULT_NETWORK;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(value)) {
    throw new PierError('E_CONFIG_INVALID', `PIER_NETWORK "${value}" is not a Docker network name`, {
      status: 400,
      hint: 'use letters, digits, "_", "." and "-", starting with a letter or digit (default: pier)',
    });
  }
  return value;
}

/**
 * An IPv4 range in CIDR form for the network's containers. The default sits in 198.18.0.0/15
 * (reserved for benchmarking, RFC 2544), which no LAN or cloud network uses.
 */
function parseSubnet(value: string | undefined): string {
  if (value === undefined || value === '') return DEFAULT_NETWORK_SUBNET;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  const octets = m ? m.slice(1, 5).map(Number) : [];
  const bits = Number(m?.[5]);
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  if (!m || octets.some((o) => o > 255) || !(bits >= 8 && bits <= 28) || ip % size !== 0) {
    throw new PierError('E_CONFIG_INVALID', `PIER_NETWORK_SUBNET "${value}" is not an IPv4 network in CIDR form`, {
      status: 400,
      hint: `use a network address and a prefix from /8 to /28 that no other network on the host uses, e.g. ${DEFAULT_NETWORK_SUBNET} (the default)`,
    });
  }
  return value;
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
function parseVolumeDriver(value: string | undefined): 'auto' | 'dir' | 'btrfs' {
  if (value === undefined || value === '' || value === 'auto') return 'auto';
  if (value === 'dir' || value === 'btrfs') return value;
  throw new PierError('E_CONFIG_INVALID', `PIER_VOLUME_DRIVER "${value}" is not auto, dir or btrfs`, { status: 400, hint: 'unset it to pick btrfs when the volumes folder is on btrfs, else dir' });
}

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

/** "4MiB", "512KiB", "1000000" (bytes) → bytes; undefined when unset. */
export function parseSize(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d+)\s*(|B|KiB|MiB|GiB|KB|MB|GB)$/i.exec(value.trim());
  const units: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
  const bytes = m ? Number(m[1]) * (units[(m[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024) {
    throw new PierError('E_CONFIG_INVALID', `cannot read body limit "${value}"`, { status: 400, hint: 'use a size of at least 1 KiB, e.g. 4MiB, 512KiB or a number of bytes' });
  }
  return bytes;
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

/** The in-process edge's TCP I/O (PIER_EDGE_IO): auto picks handle where Node allows it. */
function parseEdgeIo(value: string | undefined): TcpIoChoice {
  const io = value || 'auto';
  if (io === 'auto' || io === 'handle' || io === 'socket') return io;
  throw new PierError('E_CONFIG_INVALID', `PIER_EDGE_IO "${value}" is not auto, handle or socket`, { status: 400, hint: 'unset it to let the edge pick' });
}

/** Edge worker processes of `pier server` (--edge-workers, PIER_EDGE_WORKERS): 1 to 256, default 1. */
function parseEdgeWorkers(value: string | undefined): number {
  if (value === undefined || value === '') return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new PierError('E_CONFIG_INVALID', `edge workers "${value}" is not a whole number from 1 to 256`, { status: 400, hint: 'pass --edge-workers N or set PIER_EDGE_WORKERS (default 1)' });
  }
  return n;
}

/** The edge's name in its reports (--edge-name, PIER_EDGE_NAME); undefined: the host name. */
function parseEdgeName(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  // eslint-disable-next-line no-control-regex
  if (value.length > 200 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new PierError('E_CONFIG_INVALID', 'the edge name must be 1 to 200 characters with no control characters', { status: 400, hint: 'pass --edge-name NAME or set PIER_EDGE_NAME' });
  }
  return value;
}
