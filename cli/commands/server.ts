// `pier server`: run Pier. With every role (the default) this process is a small supervisor: the
// primary of the edge cluster, with the API (API, scheduler, health checks, database) in a child
// process it restarts (cli/server-supervisor.ts), so restarting or upgrading the API drops no
// edge traffic. `--role api` runs the API alone, in this process; the supervisor starts its API
// child that way (PIER_SERVER_SUPERVISED). The entry point of both: it loads programs lazily (so
// other commands stay light), makes the files it writes private, and installs the last-resort
// error handlers. Signals (supervisor): SIGHUP restarts the API process, SIGUSR2 rolls the edge
// workers, SIGTERM/SIGINT stop all.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineCommand } from 'citty';
import pino, { type Logger } from 'pino';
import type { ServerConfig } from '../../api/config.js';
import { SUPERVISED_ENV, type ApiReady } from '../api-child.js';
import { CommandExit } from '../command-exit.js';
import { printLine, warn } from '../output.js';
import { fingerprintHex } from '../../api/tls/certificate-fingerprint.js';

/** Flags the supervisor sets itself on its API child instead of passing them on. */
const OWN_FLAGS = new Set(['--role', '--api-listen', '--data-dir', '--edge-workers', '--edge-name']);

export default defineCommand({
  meta: { name: 'server', description: 'Run Pier: the API, the scheduler and the edge proxy (the API in a child process the edge outlives)' },
  args: {
    'api-listen': { type: 'string', description: 'Where the API listens (env PIER_API_LISTEN)', default: '127.0.0.1:7700', valueHint: 'HOST:PORT' },
    'data-dir': { type: 'string', description: 'Data folder: embedded database, admin and edge tokens, edge state (env PIER_DATA_DIR; default ./.pier)', valueHint: 'DIR' },
    role: { type: 'string', description: 'Roles to run: all (API child + edge), or api (the API alone; edge-only nodes use `pier edge`)', default: 'all', valueHint: 'ROLES' },
    'edge-workers': { type: 'string', description: 'Edge worker processes, rolled one by one on SIGUSR2 (env PIER_EDGE_WORKERS; default 1)', valueHint: 'N' },
    'edge-name': { type: 'string', description: 'Name of this edge in its reports to the API (env PIER_EDGE_NAME; default the host name)', valueHint: 'NAME' },
    'volume-root': {
      type: 'string',
      description: 'Add a storage root volumes can move to with `pier volumes move --to NAME` (repeatable; env PIER_VOLUME_ROOTS, comma separated); the volumes folder is the root "default"',
      valueHint: 'NAME=PATH',
    },
    'node-agent': {
      type: 'string',
      description: "A node's agent (`pier agent` there), by the node's swarm address: ADDRESS=http://HOST:PORT (repeatable; env PIER_NODE_AGENTS, comma separated). On a swarm, new volumes are made on the first ready node with an agent, in this order (docs/several-machines.md, \"Volumes on a swarm\")",
      valueHint: 'ADDRESS=URL',
    },
    'node-agent-token-file': { type: 'string', description: 'File holding the token the node agents were started with (env PIER_NODE_AGENT_TOKEN_FILE, or the token itself in PIER_AGENT_TOKEN)', valueHint: 'FILE' },
    'ip-pool': {
      type: 'string',
      description: 'Add a pool of dedicated addresses apps get with `pier ips allocate` (repeatable; env PIER_IP_POOLS, comma separated)',
      valueHint: 'CIDR',
    },
    'body-limit': { type: 'string', description: 'Largest request body the API reads, e.g. 4MiB; larger ones get 413 (env PIER_BODY_LIMIT; default 4MiB)', valueHint: 'SIZE' },
    registry: { type: 'string', description: 'Where built images are pushed: local (Pier runs docker-registry on loopback, storage in the data folder), off, or an external registry URL (env PIER_REGISTRY; default local)', valueHint: 'local|off|URL' },
    'registry-user': { type: 'string', description: 'User for an external registry with basic auth; the password comes from env PIER_REGISTRY_PASSWORD or --registry-password-file, never the command line. Pier keeps both in its data folder (env PIER_REGISTRY_USER)', valueHint: 'USER' },
    'registry-listen': { type: 'string', description: "Where Pier's own registry listens, HOST:PORT (port 0: one picked and kept): an address every swarm node reaches, so releases built by Pier run there by digest; the nodes' engines must trust it (insecure-registries or TLS, see docs/several-machines.md) (env PIER_REGISTRY_LISTEN; default 127.0.0.1)", valueHint: 'HOST:PORT' },
    'registry-password-file': { type: 'string', description: 'File holding the external registry password (env PIER_REGISTRY_PASSWORD_FILE)', valueHint: 'FILE' },
    'registry-keep': { type: 'string', description: 'Built images kept per app by registry garbage collection, besides the current and running releases (env PIER_REGISTRY_KEEP; default 10)', valueHint: 'N' },
    'registry-gc-grace': { type: 'string', description: 'A pushed image younger than this is never collected, e.g. 24h (env PIER_REGISTRY_GC_GRACE; default 24h)', valueHint: 'DURATION' },
    'registry-gc-interval': { type: 'string', description: 'How often the server collects registry garbage, or off (env PIER_REGISTRY_GC_INTERVAL; default 24h)', valueHint: 'DURATION|off' },
    'build-context-limit': { type: 'string', description: 'Largest build context a deploy may upload, e.g. 1GiB (env PIER_BUILD_CONTEXT_LIMIT; default 512MiB)', valueHint: 'SIZE' },
    runtime: { type: 'string', description: 'What runs instances: docker (containers on the engine DOCKER_HOST names) or swarm (services on the swarm whose manager DOCKER_HOST names; other nodes\' engines in env PIER_SWARM_NODE_ENGINES) (env PIER_RUNTIME; default docker)', valueHint: 'docker|swarm' },
    'private-ipv6': { type: 'string', description: 'ULA prefix private networks get their IPv6 /64s from; refused at start if it clashes with a host route (env PIER_PRIVATE_IPV6; default fd70:6965:7200::/48)', valueHint: 'CIDR' },
    'api-tls': { type: 'string', description: 'auto: the API serves HTTPS when it listens off loopback (with --api-tls-cert/--api-tls-key, else a self-signed certificate kept in the data folder, its fingerprint printed for `pier login --fingerprint`) and HTTP on loopback; off: plain HTTP, refused off loopback (env PIER_API_TLS; default auto)', valueHint: 'auto|off' },
    'api-tls-cert': { type: 'string', description: 'PEM certificate (chain after it) the API serves HTTPS with, also on loopback (env PIER_API_TLS_CERT)', valueHint: 'FILE' },
    'api-tls-key': { type: 'string', description: 'PEM private key of --api-tls-cert (env PIER_API_TLS_KEY)', valueHint: 'FILE' },
    'private-ipv4': { type: 'string', description: 'IPv4 range private networks get their /24s from; refused at start if it clashes with a host route (on a swarm it is the overlays range and is not checked: keep it out of the networks of the nodes) (env PIER_PRIVATE_IPV4; default 10.210.0.0/16)', valueHint: 'CIDR' },
    'acme-directory': { type: 'string', description: 'ACME directory URL for certificates = "acme" endpoints, e.g. https://acme-v02.api.letsencrypt.org/directory (env PIER_ACME_DIRECTORY; default none: no certificates are obtained). Renewal: PIER_ACME_RENEW_BEFORE (30d), PIER_ACME_CHECK_EVERY (1h), PIER_ACME_RETRY (5m, doubling); PIER_ACME_EDGE_WAIT (30s): how long an order waits for the edges to serve its challenge; PIER_ACME_KEEP_DROPPED (7d): how long the certificate of a name dropped from the manifest is kept, unserved, in case it comes back', valueHint: 'URL' },
    'acme-email': { type: 'string', description: 'Contact address of the ACME account (env PIER_ACME_EMAIL)', valueHint: 'EMAIL' },
    'acme-ca-file': { type: 'string', description: "PEM CA bundle the ACME directory's HTTPS certificate is checked against, for a private CA (env PIER_ACME_CA_FILE; default the system's)", valueHint: 'FILE' },
  },
  async run({ args, rawArgs }) {
    // Everything these processes write (database files, tokens, edge state) is for their user alone.
    process.umask(0o077);
    const { loadConfig } = await import('../../api/config.js');
    const { installLastResort } = await import('../../api/last-resort.js');
    const explicitListen = rawArgs.some((a) => a.startsWith('--api-listen'));
    const config = loadConfig(process.env, {
      apiListen: explicitListen ? args['api-listen'] : undefined,
      dataDir: args['data-dir'],
      role: args.role,
      edgeWorkers: args['edge-workers'],
      edgeName: args['edge-name'],
      bodyLimit: args['body-limit'],
      registry: args.registry,
      registryUser: args['registry-user'],
      registryPasswordFile: args['registry-password-file'],
      registryListen: args['registry-listen'],
      registryKeep: args['registry-keep'],
      registryGcGrace: args['registry-gc-grace'],
      registryGcInterval: args['registry-gc-interval'],
      buildContextLimit: args['build-context-limit'],
      ipPools: repeated(rawArgs, '--ip-pool'),
      volumeRoots: repeated(rawArgs, '--volume-root'),
      runtime: args.runtime,
      nodeAgents: repeated(rawArgs, '--node-agent'),
      nodeAgentTokenFile: args['node-agent-token-file'],
      privateIpv6: args['private-ipv6'],
      privateIpv4: args['private-ipv4'],
      apiTls: args['api-tls'],
      apiTlsCert: args['api-tls-cert'],
      apiTlsKey: args['api-tls-key'],
      acmeDirectory: args['acme-directory'],
      acmeEmail: args['acme-email'],
      acmeCaFile: args['acme-ca-file'],
    });
    // Logs go to stderr; stdout is for what the user asked to see.
    const log = pino({ level: config.logLevel }, pino.destination(2));
    const lastResort = installLastResort({ log, exit: (code) => process.exit(code) });
    try {
      // An edge alone is `pier edge`; startServer says so for a role list without api.
      if (config.roles.includes('edge') && config.roles.includes('api')) await runSupervisor(config, log, rawArgs);
      else await runApi(config, log, process.env[SUPERVISED_ENV] === '1' && typeof process.send === 'function');
    } finally {
      lastResort.remove();
    }
  },
});

/** Every value of a repeatable flag (citty keeps only the last), as `--flag V` or `--flag=V`. */
function repeated(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  rawArgs.forEach((a, i) => {
    if (a === flag && rawArgs[i + 1] !== undefined) out.push(rawArgs[i + 1] as string);
    else if (a.startsWith(`${flag}=`)) out.push(a.slice(flag.length + 1));
  });
  return out;
}

async function runSupervisor(config: ServerConfig, log: Logger, rawArgs: string[]): Promise<void> {
  const { startServerSupervisor } = await import('../server-supervisor.js');
  const { ApiStartError } = await import('../api-child.js');
  const { raiseFdLimit } = await import('../../proxy/fd-limit.js');
  const { PIER_VERSION } = await import('../pier-version.js');
  // Before the edge workers are forked: they inherit it.
  await raiseFdLimit(log);
  const supervisor = await startServerSupervisor({
    config,
    apiModule: fileURLToPath(new URL('../main.js', import.meta.url)),
    apiArgs: ['server', '--role', 'api', '--data-dir', config.dataDir, ...forwarded(rawArgs)],
    env: process.env,
    edgeWorkers: config.edge.workers,
    edgeName: config.edge.name ?? hostname(),
    version: PIER_VERSION,
    log,
    logLevel: config.logLevel,
  }).catch((err: unknown) => {
    // The API process said why on stderr; end with its code.
    if (err instanceof ApiStartError) throw new CommandExit(err.exitCode);
    throw err;
  });
  // Signal handlers first: whoever reads the lines below may signal us at once.
  const onHup = (): void => void supervisor.restartApi();
  const onUsr2 = (): void => void supervisor.rollEdge();
  process.on('SIGHUP', onHup);
  process.on('SIGUSR2', onUsr2);
  const stopSignal = stopRequested();
  printStartLines(config, supervisor.api, supervisor.edgeAddresses);
  printLine(`pier: edge admin on ${supervisor.edgeAdminUrl} (/metrics, /healthz, /status)`);
  for (const w of supervisor.api.warnings) warn(w);
  await stopSignal;
  process.off('SIGHUP', onHup);
  process.off('SIGUSR2', onUsr2);
  log.info('stopping: the api process, then the edge (draining)');
  await supervisor.stop();
  log.info('stopped');
}

async function runApi(config: ServerConfig, log: Logger, supervised: boolean): Promise<void> {
  const { startServer } = await import('../../api/server.js');
  const { securePrivateFolder } = await import('../../api/private-folder.js');
  if (supervised) {
    // SIGHUP and SIGUSR2 are the supervisor's; a group-wide one must not end us.
    process.on('SIGHUP', () => undefined);
    process.on('SIGUSR2', () => undefined);
  }
  const secured = await securePrivateFolder(config.dataDir);
  if (secured.fixed > 0) {
    log.warn({ dataDir: config.dataDir, fixed: secured.fixed, examples: secured.examples }, 'data folder files were readable or writable by other users; made private');
    warn(`made ${secured.fixed} file${secured.fixed === 1 ? '' : 's'} in ${config.dataDir} private: other users could read or change them (written by an older Pier, or by hand)`);
  }
  const server = await startServer(config, log, { localEdge: supervised });
  // The embedded database sets its own file modes (its in-memory file system ignores the umask):
  // make what it wrote on a first start private too. Its folders are 0700 already.
  const after = await securePrivateFolder(config.dataDir);
  if (after.fixed > 0) log.info({ fixed: after.fixed, examples: after.examples }, 'made files the embedded database wrote private');
  const ready: ApiReady = {
    type: 'pier-api-ready',
    apiUrl: server.apiUrl,
    databaseKind: server.databaseKind,
    adminTokenFile: server.adminTokenFile,
    edgeTokenFile: server.edgeTokenFile,
    apiFingerprint: server.apiFingerprint,
    warnings: server.warnings,
    cliConfigLine: await cliConfigLine(config.cliConfigFile, server.adminTokenFile, server.apiUrl, server.apiFingerprint),
  };
  const stopSignal = stopRequested();
  if (supervised) {
    process.send?.(ready);
  } else {
    printStartLines(config, ready, []);
    for (const w of server.warnings) warn(w);
  }
  await stopSignal;
  log.info('stopping');
  // A close that never ends (a database or engine that stopped answering mid-call) must not keep
  // a stopped server alive: the supervisor kills its API child after 20 s; alone, it exits here.
  const deadline = setTimeout(() => {
    log.error({ timeoutMs: CLOSE_DEADLINE_MS }, 'stopping did not finish in time; exiting');
    process.exit(1);
  }, CLOSE_DEADLINE_MS);
  deadline.unref();
  await server.close();
  clearTimeout(deadline);
  // The IPC channel would keep this process alive.
  if (supervised && process.connected) process.disconnect();
  // Everything of Pier's is closed. A library's own timers (an ACME client polling a CA that has
  // gone away backs off for a minute) must not keep a stopped server, and its pipes, alive.
  setTimeout(() => process.exit(), 2_000).unref();
}

/** How long the API process's close may take before it exits anyway (the supervisor's own limit is 20 s). */
const CLOSE_DEADLINE_MS = 25_000;

/** The lines scripts and tests read: where the API listens, where the edge serves, the token. */
function printStartLines(config: ServerConfig, api: ApiReady, edgeAddresses: string[]): void {
  printLine(`pier: API on ${api.apiUrl} (database: ${api.databaseKind === 'pglite' ? `embedded, in ${config.dataDir}` : 'PostgreSQL'})`);
  if (edgeAddresses.length) printLine(`pier: edge serves endpoints on ${edgeAddresses.join(' and ')}`);
  if (api.apiFingerprint) {
    printLine(`pier: API certificate fingerprint ${api.apiFingerprint} (sha256 ${fingerprintHex(api.apiFingerprint)}); other machines: pier login --api ${api.apiUrl} --fingerprint ${api.apiFingerprint}`);
  }
  printLine(`pier: admin token in ${api.adminTokenFile}; ${api.cliConfigLine}`);
}

/** SIGINT, SIGTERM, or (a supervised API) the supervisor's IPC channel closing. */
function stopRequested(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
    if (process.env[SUPERVISED_ENV] === '1') process.once('disconnect', () => resolve());
  });
}

/** The command line minus the flags the supervisor sets on its API child itself. */
function forwarded(rawArgs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    const name = arg.split('=')[0]!;
    if (OWN_FLAGS.has(name)) {
      if (!arg.includes('=')) i++;
      continue;
    }
    out.push(arg);
  }
  return out;
}

/** Says whether the local CLI talks to this server; the server writes its config only when there is none (api/admin-bootstrap.ts). */
async function cliConfigLine(file: string, tokenFile: string, apiUrl: string, fingerprint: string | undefined): Promise<string> {
  const token = await readFile(tokenFile, 'utf8').then((s) => s.trim(), () => null);
  const saved = await readFile(file, 'utf8').then(
    (s) => JSON.parse(s) as { token?: unknown; apiUrl?: unknown; fingerprint?: unknown },
    () => null,
  );
  if (saved && saved.token === token && saved.apiUrl === apiUrl && saved.fingerprint === fingerprint) return `the local CLI is configured (${file})`;
  return `${file} holds other settings and was left as is; to use this server: PIER_API_URL=${apiUrl}${fingerprint ? ` PIER_API_FINGERPRINT=${fingerprint}` : ''} PIER_TOKEN=$(cat ${tokenFile}) pier …, or \`pier login\``;
}
