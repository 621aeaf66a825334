// The server's configuration, read once from the environment and the command line by the
// entry point; components receive the parts they need and never read process.env. The `pier server`
// supervisor reads it too: keep this file's imports free of the database layer (drizzle-orm).
import { parseEnvironmentConfig, type EnvironmentConfig } from './environment-config.js';
import { parseNodeAgents, type NodeAgentsSetting } from './agent/node-agents.js';
import { parseAcmeConfig, type AcmeConfig } from './certificates/acme-config.js';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TcpIoChoice } from '../proxy/tcp-io/select-tcp-io.js';
import { parseIpPools, type IpPool } from './ip-pool.js';
import { parseDuration as parseManifestDuration } from './manifest.js';
import { PierError } from './pier-error.js';
import { parsePrivatePrefixes, type PrivatePrefixes } from './private/private-prefixes.js';
import { Secret } from './registry/registry-credentials.js';
import { parseRegistryListen, type RegistryListen } from './registry/registry-listen.js';
import type { ApiTlsSetting } from './tls/api-tls.js';

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
  /**
   * Pools dedicated addresses are allocated from (--ip-pool, repeatable; PIER_IP_POOLS, comma
   * separated), and how long a released address waits before another app may get it
   * (PIER_IP_COOLDOWN), and how long an address of a deleted app waits for the edges to stop
   * serving it before its cool-down starts anyway (PIER_IP_UNBIND_WAIT).
   */
  ips: { pools: IpPool[]; cooldownMs: number; unbindWaitMs: number };
  /** Where the local CLI configuration lives (written on first start). */
  cliConfigFile: string;
  logLevel: string;
  /** Largest request body the API accepts (PIER_BODY_LIMIT, --body-limit); undefined: the default. */
  bodyLimitBytes: number | undefined;
  /**
   * Where built images go (--registry, PIER_REGISTRY): Pier's own registry under the data dir
   * (local, the default), an external one by URL, or none (off: deploys from a Dockerfile fail).
   */
  registry: RegistrySetting;
  /**
   * Registry garbage collection (--registry-keep, --registry-gc-grace, --registry-gc-interval and
   * their PIER_ variables): images kept per app, the age under which a pushed image is never
   * deleted, and how often the server collects (null: only on demand).
   */
  registryGc: { keep: number; graceMs: number; intervalMs: number | null };
  /** Largest build context the API accepts (--build-context-limit, PIER_BUILD_CONTEXT_LIMIT; default 512MiB). */
  buildContextLimitBytes: number;
  /** Reconcile passes that run at once (PIER_RECONCILE_CONCURRENCY); below the database pool's size. */
  reconcileConcurrency: number;
  /** Preview ports and the reaper's interval (api/environment-config.ts); defaults when unset. */
  environments?: EnvironmentConfig | undefined;
  /**
   * Where volumes and snapshots live (PIER_VOLUMES_DIR, default `<data dir>/volumes`) and with
   * which driver (PIER_VOLUME_DRIVER: auto picks btrfs when the folder is on btrfs, else dir).
   */
  volumes: {
    dir: string;
    driver: 'auto' | 'dir' | 'btrfs';
    keeperIntervalMs: number;
    undeleteWindowMs: number;
    /**
     * More storage roots by name (--volume-root NAME=PATH, repeatable; PIER_VOLUME_ROOTS, comma
     * separated): a volume moves between them (`pier volumes move`). `dir` is the root `default`.
     */
    roots?: Record<string, string> | undefined;
    /** How long a moved volume's source is kept read-only before the keeper purges it (PIER_VOLUME_MOVE_RETENTION; default 24 h). */
    moveRetentionMs?: number | undefined;
    /** Fault injection for the move's proofs (PIER_VOLUME_MOVE_FAULT): see api/volumes/volume-mover.ts. Unset in production. */
    moveFault?: string | undefined;
  };
  /**
   * What runs instances (--runtime, PIER_RUNTIME): docker (the default: containers on the one
   * engine DOCKER_HOST names) or swarm (services on the swarm whose manager DOCKER_HOST names),
   * with each other node's engine by address (PIER_SWARM_NODE_ENGINES) for logs, exec and stops.
   */
  runtime: RuntimeSetting;
  /**
   * The node agents (`pier agent`) by node address and their token (--node-agent ADDRESS=URL,
   * --node-agent-token-file and their PIER_ variables; api/agent/node-agents.ts); undefined when
   * none are given. Read, not yet used: volumes on a swarm are the next step.
   */
  nodeAgents?: NodeAgentsSetting | undefined;
  /**
   * Where private networks get their addresses (--private-ipv6, --private-ipv4 and their PIER_
   * variables): a ULA prefix split into /64s and an IPv4 range split into /24s, one pair per network.
   */
  privateNetworks: PrivatePrefixes;
  /** How the API serves (--api-tls, --api-tls-cert, --api-tls-key and their PIER_ variables; api/tls/api-tls.ts). */
  apiTls?: ApiTlsSetting | undefined;
  /** ACME (PIER_ACME_*; api/certificates/acme-config.ts): undefined without PIER_ACME_DIRECTORY. */
  acme?: AcmeConfig | undefined;
}

export type RuntimeSetting = { kind: 'docker' } | { kind: 'swarm'; nodeEngines: Record<string, string> };

export const DEFAULT_NETWORK = 'pier';
export const DEFAULT_NETWORK_SUBNET = '198.19.0.0/16';

export type RegistrySetting =
  | { kind: 'local'; dir: string; binary: string; listen?: RegistryListen | undefined }
  | { kind: 'external'; url: URL; credentials: { username: string; password: Secret } | undefined }
  | { kind: 'off' };

/** The database pool holds 10 connections: reconciles leave at least two to the API. */
export const MAX_RECONCILE_CONCURRENCY = 8;

export interface ServerFlags {
  apiListen?: string | undefined;
  dataDir?: string | undefined;
  role?: string | undefined;
  edgeWorkers?: string | undefined;
  edgeName?: string | undefined;
  bodyLimit?: string | undefined;
  registry?: string | undefined;
  registryUser?: string | undefined;
  registryPasswordFile?: string | undefined;
  registryListen?: string | undefined;
  registryKeep?: string | undefined;
  registryGcGrace?: string | undefined;
  registryGcInterval?: string | undefined;
  buildContextLimit?: string | undefined;
  /** `--ip-pool` values, in order; when given they replace PIER_IP_POOLS. */
  ipPools?: string[] | undefined;
  /** `--volume-root NAME=PATH` values; when given they replace PIER_VOLUME_ROOTS. */
  volumeRoots?: string[] | undefined;
  runtime?: string | undefined;
  /** `--node-agent ADDRESS=URL` values; when given they replace PIER_NODE_AGENTS. */
  nodeAgents?: string[] | undefined;
  nodeAgentTokenFile?: string | undefined;
  privateIpv6?: string | undefined;
  privateIpv4?: string | undefined;
  apiTls?: string | undefined;
  apiTlsCert?: string | undefined;
  apiTlsKey?: string | undefined;
  /** --acme-directory, --acme-email, --acme-ca-file: win over PIER_ACME_DIRECTORY, _EMAIL, _CA_FILE. */
  acmeDirectory?: string | undefined;
  acmeEmail?: string | undefined;
  acmeCaFile?: string | undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv, flags: ServerFlags = {}): ServerConfig {
  const api = parseListen(flags.apiListen ?? env.PIER_API_LISTEN ?? '127.0.0.1:7700');
  const dataDir = resolve(flags.dataDir ?? env.PIER_DATA_DIR ?? '.pier');
  const edgeIpv4 = optionalAddress(env.PIER_EDGE_IPV4, '127.0.0.1');
  const edgeIpv6 = optionalAddress(env.PIER_EDGE_IPV6, '::1');
  const poolTexts = flags.ipPools?.length ? flags.ipPools : (env.PIER_IP_POOLS ?? '').split(/[\s,]+/).filter(Boolean);
  return {
    roles: parseRoles(flags.role ?? env.PIER_ROLE ?? 'all'),
    acme: parseAcmeConfig({
      ...env,
      ...(flags.acmeDirectory === undefined ? {} : { PIER_ACME_DIRECTORY: flags.acmeDirectory }),
      ...(flags.acmeEmail === undefined ? {} : { PIER_ACME_EMAIL: flags.acmeEmail }),
      ...(flags.acmeCaFile === undefined ? {} : { PIER_ACME_CA_FILE: flags.acmeCaFile }),
    }),
    api,
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    dockerSocket: parseDockerHost(env.DOCKER_HOST),
    network: { name: parseNetworkName(env.PIER_NETWORK), subnet: parseSubnet(env.PIER_NETWORK_SUBNET) },
    edge: {
      ipv4: edgeIpv4,
      ipv6: edgeIpv6,
      drainTimeoutMs: 30_000,
      io: parseEdgeIo(env.PIER_EDGE_IO),
      workers: parseEdgeWorkers(flags.edgeWorkers ?? env.PIER_EDGE_WORKERS),
      name: parseEdgeName(flags.edgeName ?? env.PIER_EDGE_NAME),
    },
    ips: {
      pools: parseIpPools(poolTexts, [edgeIpv4, edgeIpv6].filter((a): a is string => a !== null)),
      cooldownMs: parseCooldown(env.PIER_IP_COOLDOWN),
      unbindWaitMs: parseCooldown(env.PIER_IP_UNBIND_WAIT, 'PIER_IP_UNBIND_WAIT', DEFAULT_IP_UNBIND_WAIT_MS, '1m'),
    },
    cliConfigFile: cliConfigPath(env),
    logLevel: env.PIER_LOG_LEVEL ?? 'info',
    bodyLimitBytes: parseSize(flags.bodyLimit ?? env.PIER_BODY_LIMIT),
    registry: withRegistryListen(
      parseRegistry(flags.registry ?? env.PIER_REGISTRY, dataDir, {
        username: flags.registryUser ?? env.PIER_REGISTRY_USER,
        password: env.PIER_REGISTRY_PASSWORD,
        passwordFile: flags.registryPasswordFile ?? env.PIER_REGISTRY_PASSWORD_FILE,
      }),
      flags.registryListen ?? env.PIER_REGISTRY_LISTEN,
    ),
    registryGc: {
      keep: parseKeep(flags.registryKeep ?? env.PIER_REGISTRY_KEEP),
      graceMs: parseDuration(flags.registryGcGrace ?? env.PIER_REGISTRY_GC_GRACE, 'registry GC grace', '--registry-gc-grace', 24 * 3_600_000) as number,
      intervalMs: parseDuration(flags.registryGcInterval ?? env.PIER_REGISTRY_GC_INTERVAL, 'registry GC interval', '--registry-gc-interval', 24 * 3_600_000, true),
    },
    buildContextLimitBytes: parseSize(flags.buildContextLimit ?? env.PIER_BUILD_CONTEXT_LIMIT, 'build context limit') ?? 512 * 1024 ** 2,
    reconcileConcurrency: parseConcurrency(env.PIER_RECONCILE_CONCURRENCY),
    volumes: {
      dir: resolve(env.PIER_VOLUMES_DIR ?? join(dataDir, 'volumes')),
      driver: parseVolumeDriver(env.PIER_VOLUME_DRIVER),
      // How often scheduled snapshots, retention and deleted volumes are looked at.
      keeperIntervalMs: parseDuration(env.PIER_VOLUME_KEEPER_INTERVAL, 'volume keeper interval', 'PIER_VOLUME_KEEPER_INTERVAL', 60_000) as number,
      // How long a deleted volume's final snapshot is kept (undelete possible until then).
      undeleteWindowMs: parseDuration(env.PIER_VOLUME_UNDELETE_WINDOW, 'volume undelete window', 'PIER_VOLUME_UNDELETE_WINDOW', 48 * 3_600_000) as number,
      roots: parseVolumeRoots(flags.volumeRoots?.length ? flags.volumeRoots : (env.PIER_VOLUME_ROOTS ?? '').split(',').filter(Boolean)),
      moveRetentionMs: parseDuration(env.PIER_VOLUME_MOVE_RETENTION, 'volume move retention', 'PIER_VOLUME_MOVE_RETENTION', 24 * 3_600_000) as number,
      moveFault: env.PIER_VOLUME_MOVE_FAULT || undefined,
    },
    runtime: parseRuntime(flags.runtime ?? env.PIER_RUNTIME, env.PIER_SWARM_NODE_ENGINES),
    nodeAgents: parseNodeAgents(
      flags.nodeAgents?.length ? flags.nodeAgents : (env.PIER_NODE_AGENTS ?? '').split(',').filter((a) => a.trim()),
      flags.nodeAgentTokenFile ?? (env.PIER_NODE_AGENT_TOKEN_FILE || undefined),
      env.PIER_AGENT_TOKEN,
    ),
    privateNetworks: parsePrivatePrefixes(flags.privateIpv6 ?? env.PIER_PRIVATE_IPV6, flags.privateIpv4 ?? env.PIER_PRIVATE_IPV4),
    environments: parseEnvironmentConfig(env),
    apiTls: parseApiTls(flags.apiTls ?? env.PIER_API_TLS, flags.apiTlsCert ?? env.PIER_API_TLS_CERT, flags.apiTlsKey ?? env.PIER_API_TLS_KEY),
  };
}

function parseApiTls(mode: string | undefined, certFile: string | undefined, keyFile: string | undefined): ApiTlsSetting {
  if (mode !== undefined && mode !== '' && mode !== 'auto' && mode !== 'off') {
    throw new PierError('E_CONFIG_INVALID', `--api-tls "${mode}" is not auto or off`, { status: 400, hint: 'auto (the default) serves HTTPS off loopback; off serves plain HTTP, on loopback only' });
  }
  return { mode: mode === 'off' ? 'off' : 'auto', certFile: certFile ? resolve(certFile) : undefined, keyFile: keyFile ? resolve(keyFile) : undefined };
}

function parseRuntime(value: string | undefined, engines: string | undefined): RuntimeSetting {
  if (value === undefined || value === '' || value === 'docker') return { kind: 'docker' };
  if (value !== 'swarm') {
    throw new PierError('E_CONFIG_INVALID', `runtime "${value}" is not known`, { status: 400, hint: 'use --runtime docker (one engine, the default) or --runtime swarm (PIER_RUNTIME)' });
  }
  const nodeEngines: Record<string, string> = {};
  for (const entry of (engines ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf('=');
    const address = entry.slice(0, at).trim();
    const host = entry.slice(at + 1).trim();
    if (at <= 0 || !host.startsWith('unix://')) {
      throw new PierError('E_CONFIG_INVALID', `PIER_SWARM_NODE_ENGINES entry "${entry}" is not ADDRESS=unix:///path`, {
        status: 400,
        hint: 'name each node by its swarm address and its engine\'s socket, comma separated: 10.0.0.2=unix:///run/node2.sock',
      });
    }
    nodeEngines[address] = host.slice('unix://'.length);
  }
  return { kind: 'swarm', nodeEngines };
}

/** Default cool-down of a released address: long enough for DNS records and clients to let go. */
export const DEFAULT_IP_COOLDOWN_MS = 3_600_000;

/** How long a delete waits for the edges to confirm an address is unbound (api/ip-unbinder.ts). */
export const DEFAULT_IP_UNBIND_WAIT_MS = 60_000;

function parseCooldown(value: string | undefined, name = 'PIER_IP_COOLDOWN', fallback = DEFAULT_IP_COOLDOWN_MS, shown = '1h'): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d+(ms|s|m|h)$/.test(value)) {
    throw new PierError('E_CONFIG_INVALID', `${name} "${value}" is not a duration`, { status: 400, hint: `use a duration such as "0s", "10m" or "24h" (default ${shown})` });
  }
  return parseManifestDuration(value);
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

/** `NAME=PATH` storage roots besides `default` (the volumes folder). */
function parseVolumeRoots(values: string[]): Record<string, string> {
  const roots: Record<string, string> = {};
  for (const value of values) {
    const m = /^([a-z][a-z0-9-]{0,30})=(\/.+)$/.exec(value.trim());
    if (!m || m[1] === 'default' || roots[m[1] as string] !== undefined) {
      throw new PierError('E_CONFIG_INVALID', `volume root "${value}" is not NAME=/absolute/path with a new name`, {
        status: 400,
        hint: 'e.g. --volume-root fast=/mnt/nvme/pier (name: a-z, 0-9, "-"; "default" is the volumes folder itself)',
      });
    }
    roots[m[1] as string] = resolve(m[2] as string);
  }
  return roots;
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
export function parseSize(value: string | undefined, what = 'body limit'): number | undefined {
  if (value === undefined || value === '') return undefined;
  const m = /^(\d+)\s*(|B|KiB|MiB|GiB|KB|MB|GB)$/i.exec(value.trim());
  const units: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };
  const bytes = m ? Number(m[1]) * (units[(m[2] ?? '').toLowerCase()] ?? NaN) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1024) {
    throw new PierError('E_CONFIG_INVALID', `cannot read ${what} "${value}"`, { status: 400, hint: 'use a size of at least 1 KiB, e.g. 4MiB, 512KiB or a number of bytes' });
  }
  return bytes;
}

interface CredentialInput {
  username: string | undefined;
  password: string | undefined;
  passwordFile: string | undefined;
}

/**
 * "local" (default), "off", or the URL of an external registry (http://host:port), with
 * credentials for the external one. A password is never taken from the command line (other
 * users see it in `ps`) and never repeated in an error.
 */
function parseRegistry(value: string | undefined, dataDir: string, auth: CredentialInput): RegistrySetting {
  const wantsAuth = Boolean(auth.username || auth.password || auth.passwordFile);
  let setting: RegistrySetting;
  if (value === undefined || value === '' || value === 'local') setting = { kind: 'local', dir: join(dataDir, 'registry'), binary: '/usr/bin/docker-registry' };
  else if (value === 'off') setting = { kind: 'off' };
  else {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (url && (url.username || url.password)) {
      throw new PierError('E_CONFIG_INVALID', `the registry URL ${url.protocol}//…@${url.host} holds credentials; Pier does not read them from a URL`, {
        status: 400,
        hint: 'pass --registry http://HOST:PORT, --registry-user USER and the password in PIER_REGISTRY_PASSWORD or --registry-password-file FILE',
      });
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/') {
      throw new PierError('E_CONFIG_INVALID', `registry "${value}" is not local, off or a registry URL`, {
        status: 400,
        hint: 'use --registry local (Pier runs one), --registry off, or --registry http://HOST:PORT (no path)',
      });
    }
    setting = { kind: 'external', url, credentials: undefined };
  }
  if (!wantsAuth) return setting;
  if (setting.kind !== 'external') {
    throw new PierError('E_CONFIG_INVALID', `registry credentials are for an external registry, and this server's registry is ${setting.kind}`, {
      status: 400,
      hint: "pass --registry http://HOST:PORT with them, or drop --registry-user and PIER_REGISTRY_PASSWORD (Pier's own registry needs none)",
    });
  }
  if (!auth.username) {
    throw new PierError('E_CONFIG_INVALID', 'a registry password was given without a user', { status: 400, hint: 'add --registry-user USER (or PIER_REGISTRY_USER)' });
  }
  let password = auth.password;
  if (auth.passwordFile) {
    try {
      password = readFileSync(auth.passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new PierError('E_CONFIG_INVALID', `cannot read the registry password file ${auth.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`, {
        status: 400,
        hint: 'give a file this user can read, holding the password alone',
      });
    }
  }
  if (!password) {
    throw new PierError('E_CONFIG_INVALID', `registry user ${auth.username} was given without a password`, {
      status: 400,
      hint: 'put the password in PIER_REGISTRY_PASSWORD or in a file named by --registry-password-file (never on the command line)',
    });
  }
  return { ...setting, credentials: { username: auth.username, password: new Secret(password) } };
}

/** --registry-listen / PIER_REGISTRY_LISTEN: where Pier's own registry listens (loopback unless given). */
function withRegistryListen(setting: RegistrySetting, value: string | undefined): RegistrySetting {
  const listen = parseRegistryListen(value);
  if (!listen) return setting;
  if (setting.kind !== 'local') {
    throw new PierError('E_CONFIG_INVALID', `--registry-listen is for Pier's own registry, and this server's registry is ${setting.kind}`, {
      status: 400,
      hint: 'drop --registry-listen (PIER_REGISTRY_LISTEN), or use --registry local',
    });
  }
  return { ...setting, listen };
}

/** Images kept per app (--registry-keep, PIER_REGISTRY_KEEP): 1 to 10000, default 10. */
function parseKeep(value: string | undefined): number {
  if (value === undefined || value === '') return 10;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new PierError('E_CONFIG_INVALID', `registry keep "${value}" is not a whole number from 1 to 10000`, {
      status: 400,
      hint: 'pass --registry-keep N or set PIER_REGISTRY_KEEP: the built images kept per app besides the current and running ones (default 10)',
    });
  }
  return n;
}

/** "30s", "90m", "12h", "7d" → ms; "off" (where allowed) → null. */
function parseDuration(value: string | undefined, what: string, flag: string, fallback: number, offAllowed = false): number | null {
  if (value === undefined || value === '') return fallback;
  if (offAllowed && value === 'off') return null;
  const m = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  const unit: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  const ms = m ? Number(m[1]) * (unit[m[2] as string] as number) : NaN;
  if (!Number.isSafeInteger(ms) || (offAllowed && ms <= 0)) {
    throw new PierError('E_CONFIG_INVALID', `${what} "${value}" is not a duration`, {
      status: 400,
      hint: `pass ${flag} with a number and s, m, h or d, e.g. 30m or 24h${offAllowed ? ', or off' : ''}`,
    });
  }
  return ms;
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
