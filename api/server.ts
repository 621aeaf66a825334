// The API process of `pier server`: builds the database, runtime, scheduler, health checks and
// HTTP API with explicit constructors, and stops them in reverse order. The edge runs elsewhere:
// in `pier server` (all roles) its supervisor is the edge and follows this API's feed with the
// edge token made here (cli/server-supervisor.ts); `--role api` is this process alone.
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { eq } from 'drizzle-orm';
import { openDatabase, type Db } from '../db/database.js';
import { nodes, settings } from '../db/schema/index.js';
import { bootstrapAdmin } from './admin-bootstrap.js';
import { createApi } from './app.js';
import type { ServerConfig } from './config.js';
import { createEnvironmentReaper, type EnvironmentReaper } from './environment-reaper.js';
import { createEnvironmentService } from './environment-service.js';
import { loadSecretBox } from './secret-box.js';
import { createSecretService, secretValues } from './secret-service.js';
import { createAppDeleter } from './app-deleter.js';
import { createBuildService } from './build-service.js';
import { createIpService } from './ip-service.js';
import { poolNotBindable, preflightPools } from './pool-preflight.js';
import { createIpUnbinder } from './ip-unbinder.js';
import { createDeployService } from './deploy-service.js';
import { createVolumeSeeder } from './volume-seeds.js';
import { createEdgeFeed, type EdgeFeed } from './edge-feed.js';
import { loadKeyVault } from './certificates/key-vault.js';
import { createEdgeReports, type EdgeReports } from './edge-reports.js';
import { createSystemMonitor } from './system-monitor.js';
import { PIER_VERSION } from '../cli/pier-version.js';
import { releaseUnusedPorts } from './port-claims.js';
import { createServerMetrics } from './server-metrics.js';
import { bootstrapEdgeToken } from './edge-token.js';
import { createEventLog } from './event-log.js';
import { newId, randomId } from './ids.js';
import { PierError } from './pier-error.js';
import { createExternalRegistry } from './registry/external-registry.js';
import { createLocalRegistry } from './registry/local-registry.js';
import type { Registry, RegistryCredentials, RegistryEvent } from './registry/registry.js';
import { createRegistryClient } from './registry/registry-client.js';
import { registryCredentials } from './registry/registry-credentials.js';
import { createRegistryGate } from './registry/registry-gate.js';
import { createRegistryGc } from './registry/registry-gc.js';
import { startRegistryGcTask } from './registry/registry-gc-task.js';
import { createDockerBuilder } from './runtime/docker-builder.js';
import { createDockerRuntime } from './runtime/docker-runtime.js';
import { createSwarmServices } from './runtime/swarm-services.js';
import { createSwarmRuntime } from './runtime/swarm-runtime.js';
import { createSwarmOverlays } from './runtime/swarm-overlays.js';
import { createSwarmPrivate, SWARM_PRIVATE_WARNING, swarmPrivateState } from './scheduler/swarm-private.js';
import { createSwarmNames } from './scheduler/swarm-names.js';
import { createSwarmReconciler, refuseOnSwarm } from './scheduler/swarm-reconciler.js';
import { createSwarmNodeDirectory, type NodeDirectory } from './node-directory.js';
import { createSwarmWatcher } from './scheduler/swarm-watcher.js';
import { LABELS, type NetworkSpec, type Runtime } from './runtime/runtime.js';
import { createAppLeases } from './scheduler/app-leases.js';
import { createHealthMonitor } from './scheduler/health-monitor.js';
import { joinNetwork } from './scheduler/join-network.js';
import { removeLegacyIsolation } from './private/legacy-isolation.js';
import { createPrivateNames } from './private/private-names.js';
import { createPrivateFirewall } from './private/private-firewall.js';
import { createPrivateNetworks } from './private/private-networks.js';
import { checkPrivatePrefixes } from './private/private-preflight.js';
import { bridgeName } from './private/host-routes.js';
import { PRIVATE_LABELS } from './private/private-network-key.js';
import { createReconciler } from './scheduler/reconciler.js';
import { createScheduler, type Scheduler } from './scheduler/scheduler.js';
import { openVolumeRoots } from './volumes/volume-roots.js';
import { createAgentRoots } from './volumes/agent-roots.js';
import { createSwarmVolumes } from './scheduler/swarm-volumes.js';
import { createVolumeMover, parseMoveFault } from './volumes/volume-mover.js';
import { createPreparedStarts } from './scheduler/prepared-start.js';
import { createVolumeAttacher } from './volumes/volume-attacher.js';
import { createVolumeService } from './volumes/volume-service.js';
import { createVolumeKeeper } from './volumes/volume-keeper.js';
import { createAcmeChallenges } from './certificates/acme-challenges.js';
import { createAcmeIssuer } from './certificates/acme-issuer.js';
import { createCertificateKeeper } from './certificates/certificate-keeper.js';
import { waitForEdgesApplied } from './certificates/edges-applied.js';
import { createTransactions, type Checkpoint } from './transactions.js';
import { DEFAULT_API_TLS, resolveApiTls } from './tls/api-tls.js';
import { fingerprintHex } from './tls/certificate-fingerprint.js';

export interface RunningServer {
  apiUrl: string;
  databaseKind: 'postgres' | 'pglite';
  adminTokenFile: string;
  /** The org-wide edge-scope token an edge on this host follows the feed with (mode 0600). */
  edgeTokenFile: string;
  /** The API certificate's SHA-256 fingerprint when it serves HTTPS (clients pin it), else undefined. */
  apiFingerprint?: string | undefined;
  /** A problem worth telling the operator at start (e.g. Docker unreachable). */
  warnings: string[];
  /** Parts that benchmarks and tests measure or drive directly. */
  internals: { scheduler: Scheduler; edgeFeed: EdgeFeed; db: Db; registry: Registry | null; reaper?: EnvironmentReaper };
  close(): Promise<void>;
}

/** For tests and benchmarks only: `pier server` passes none of these. */
export interface StartOverrides {
  /** A runtime in place of the Docker one (e.g. the in-memory runtime). */
  runtime?: Runtime;
  /** The fault-injection hook between writes of a transaction (api/transactions.ts). */
  checkpoint?: Checkpoint;
  /** Milliseconds between periodic resyncs (default 10 000). */
  resyncMs?: number;
  /** How often the pending ACME challenges of other API servers are looked for (default 1 s; 30 s on the embedded database). */
  acmeChallengePollMs?: number;
  /** Milliseconds between two looks at the engine, the database and the edges (default 5 000). */
  systemLookMs?: number;
  /** The edge runs on this host (`pier server`'s API child): check at start that it can bind the pools. */
  localEdge?: boolean;
  /** The reaper's clock (api/environment-reaper.ts). */
  now?: () => Date;
}

const LOCAL_NODE = 'node_local';

export async function startServer(config: ServerConfig, log: Logger, overrides: StartOverrides = {}): Promise<RunningServer> {
  if (!config.roles.includes('api')) {
    throw new PierError('E_CONFIG_INVALID', 'a server without the api role is not supported yet', {
      status: 400,
      hint: 'run `pier server` (all roles) or `pier server --role api`',
    });
  }
  // Off loopback the API serves HTTPS only (api/tls/api-tls.ts): decided before anything listens.
  const tls = await resolveApiTls(config.api.host, config.apiTls ?? DEFAULT_API_TLS, config.dataDir);
  if (tls.kind === 'https') {
    log.info({ fingerprint: tls.fingerprint, fingerprintHex: fingerprintHex(tls.fingerprint), certificate: tls.certFile, source: tls.source, created: tls.created }, 'api serves https');
  }
  const warnings: string[] = [];
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch((err) => log.warn({ err }, 'close failed'));
  };

  try {
    const database = await openDatabase({
      url: config.databaseUrl,
      dataDir: join(config.dataDir, 'db'),
      applicationName: `pier-api:${process.pid}`,
      onLocksLost: (why, locks) => log.error({ why, locks }, 'database lock session lost: reconciles of those apps stop and take their locks again'),
    });
    closers.push(() => database.close());
    const { db } = database;

    // An external registry's credentials: given now (then kept in the data folder) or kept before.
    const credentials: RegistryCredentials | null =
      config.registry.kind === 'external' ? await registryCredentials(config.dataDir, config.registry.url.origin, config.registry.credentials) : null;
    const dockerRuntime =
      overrides.runtime ??
      createDockerRuntime({
        socketPath: config.dockerSocket,
        log: log.child({ component: 'runtime' }),
        registryAuth: credentials && config.registry.kind === 'external' ? { host: config.registry.url.host, ...credentials } : undefined,
      });
    // --runtime swarm: Swarm runs the tasks of the services the swarm reconciler asks for.
    const swarmSetting = config.runtime.kind === 'swarm' && overrides.runtime === undefined ? config.runtime : null;
    const swarmServices = swarmSetting ? createSwarmServices({ socketPath: config.dockerSocket }) : null;
    const runtime: Runtime =
      swarmSetting && swarmServices
        ? createSwarmRuntime({
            manager: dockerRuntime,
            services: swarmServices,
            overlays: createSwarmOverlays({ socketPath: config.dockerSocket }),
            nodeEngines: new Map(Object.entries(swarmSetting.nodeEngines).map(([address, socketPath]) => [address, createDockerRuntime({ socketPath, log: log.child({ component: 'runtime', node: address }) })])),
            log: log.child({ component: 'runtime' }),
          })
        : dockerRuntime;
    // Made without inter-container traffic: it is the host's way in (edge, checks), and apps reach
    // each other only on their own private network (api/private/), never across organisations here.
    const network: NetworkSpec = { ...config.network, labels: { [LABELS.managed]: 'true' }, options: { 'com.docker.network.bridge.enable_icc': 'false' } };
    const engineUp = await runtime.ping().then(
      () => true,
      (err: Error) => {
        warnings.push(`${err.message}; deploys will fail until it answers`);
        return false;
      },
    );
    // Made now when the engine answers; else by the first start that finds it missing.
    if (engineUp) await ensureNetwork(runtime, network, log, warnings);
    // Private networks: prefixes checked against the host's routes (a real engine only), and the
    // networks made before found by name and reused.
    // (Not on a swarm: its private networks are overlays inside the nodes, not this host's routes.)
    if (engineUp && overrides.runtime === undefined && !swarmServices) await checkPrivatePrefixes(runtime, config.privateNetworks);
    const installationId = await installation(db);
    // Only the offered ports of an instance take connections from its network, and nothing from
    // outside it (a real engine only).
    const privateFirewall = overrides.runtime === undefined && !swarmServices ? createPrivateFirewall({ installationId, log }) : undefined;
    const privateNetworks = createPrivateNetworks({
      db,
      installationId,
      runtime,
      prefixes: config.privateNetworks,
      log: log.child({ component: 'private-networks' }),
      onCreated: privateFirewall ? (info) => privateFirewall.close({ bridge: bridgeName(info.id) }) : undefined,
      ipv4Only: swarmServices !== null,
      onProblem: (problem) => warnings.push(problem),
    });
    // On a swarm they are overlays on the manager (IPv4 only; offered ports not enforced: said once).
    if (swarmServices) warnings.push(SWARM_PRIVATE_WARNING);
    if (engineUp) await privateNetworks.ensureAll().catch((err: Error) => warnings.push(`${err.message}; private networks are made at the next start of an instance`));
    if (engineUp && privateFirewall) {
      const foreign = (await runtime.listNetworks({ [PRIVATE_LABELS.private]: 'true' }).catch(() => []))
        .filter((n) => n.labels[LABELS.installation] !== installationId && n.ipv6Subnet)
        .map((n) => n.ipv6Subnet as string);
      // Only once the installation's chain is written (the first names round, after start): till
      // then, after an upgrade, the old rules are the only IPv6 isolation between the networks.
      // A chain that cannot be written leaves them in place.
      void privateFirewall.written().then(() => removeLegacyIsolation({ prefix: config.privateNetworks.ipv6, foreign: new Set(foreign), log: log.child({ component: 'private-firewall' }) }));
    }
    await db
      .insert(nodes)
      .values({ id: LOCAL_NODE, name: 'local', endpoint: `unix://${config.dockerSocket}` })
      .onConflictDoUpdate({ target: nodes.id, set: { endpoint: `unix://${config.dockerSocket}`, lastSeenAt: new Date() } });

    const sharedAddresses = [config.edge.ipv4, config.edge.ipv6].filter((a): a is string => a !== null);
    const events = createEventLog(db);
    // System events (no app) belong to the admin org, known once it is bootstrapped (below).
    let systemOrg: string | undefined;
    const system = createSystemMonitor({ db, runtime, events, orgId: () => systemOrg, log, intervalMs: overrides.systemLookMs });
    closers.push(async () => system.close());
    const transactions = createTransactions({ db, events, checkpoint: overrides.checkpoint });
    const leases = createAppLeases({ db, transactions, holder: `${hostname()}:${process.pid}:${randomId(4)}` });
    const keyVault = await loadKeyVault(config.dataDir);
    // tls-alpn-01 challenges of ACME orders in progress (any API server's, in the database) go to
    // every edge in the feed's snapshot.
    const acmeChallenges = createAcmeChallenges({
      db,
      vault: keyVault,
      log,
      onChange: (appId) => edgeFeed.refresh(appId),
      pollMs: overrides.acmeChallengePollMs,
      // The embedded database is this process's alone: no other server's challenges to look for.
      exclusive: database.kind === 'pglite',
    });
    const edgeFeed = createEdgeFeed({ db, log, sharedAddresses, keyVault, acmeChallenges: () => acmeChallenges.read() });
    closers.push(async () => edgeFeed.close());
    acmeChallenges.start();
    closers.push(async () => acmeChallenges.close());
    // Another API process on this database (a second server, `--role api`) changes routes this
    // one never hears of, and its edges follow this feed: a full rebuild each resync interval
    // catches them (a build that changes nothing publishes nothing).
    const feedResync = setInterval(() => edgeFeed.refresh(), overrides.resyncMs ?? 10_000);
    feedResync.unref();
    closers.push(async () => clearInterval(feedResync));

    // On a swarm manager, `pier nodes` lists the swarm's nodes and the watcher records what Swarm
    // does (node.down, node.up, instance.moved); on a plain engine there is the one local node.
    let nodeDirectory: NodeDirectory | undefined;
    if (engineUp && overrides.runtime === undefined) {
      const swarm = swarmServices ?? createSwarmServices({ socketPath: config.dockerSocket });
      if (await swarm.requireManager().then(() => true, () => false)) {
        nodeDirectory = createSwarmNodeDirectory(swarm, installationId);
        const watcher = createSwarmWatcher({ db, events, services: swarm, installationId, log, locks: database.locks });
        watcher.start();
        closers.push(() => watcher.close());
        log.info({ docker: config.dockerSocket }, 'the engine is a swarm manager: nodes are the swarm\'s');
      }
    }
    // Volumes: the driver is picked by the folder's filesystem; a folder Pier cannot use is a
    // warning (deploys of apps with volumes fail with the reason), not a server that will not start.
    // On a swarm, each node's agent is a root too (`node:ADDRESS`): its volumes live there.
    const agentRoots = swarmServices ? createAgentRoots(config.nodeAgents, log.child({ component: 'node-agents' })) : undefined;
    void agentRoots?.connectAll();
    const volumeRoots = await openVolumeRoots(config.volumes.dir, config.volumes.driver, config.volumes.roots ?? {}, (w) => warnings.push(w), agentRoots);
    const swarmVolumes = swarmServices && agentRoots ? createSwarmVolumes({ db, leases, agents: agentRoots, services: swarmServices, installationId, log: log.child({ component: 'swarm-volumes' }) }) : undefined;
    const volumeDriver = volumeRoots?.default ?? null;
    const volumeAttacher = volumeDriver ? createVolumeAttacher({ db, runtime, leases, driver: volumeDriver, roots: volumeRoots, nodeId: LOCAL_NODE, installationId }) : undefined;

    // Secrets are sealed with a key in the data folder, never in the database (api/secret-box.ts).
    const secretBox = loadSecretBox(config.dataDir);
    const onRoutesChanged = (appId: string): void => {
      edgeFeed.refresh(appId);
      // New instances are probed at once (their readiness gates the rollout and the edge).
      health.poke();
    };
    const reconciler = swarmServices
      ? createSwarmReconciler({ db, services: swarmServices, runtime, leases, log: log.child({ component: 'reconciler' }), installationId, onRoutesChanged, secrets: (release) => secretValues(db, secretBox, release), private: createSwarmPrivate({ networkFor: (a) => privateNetworks.networkFor(a), log: log.child({ component: 'private-networks' }) }), volumes: swarmVolumes })
      : createReconciler({
      volumes: volumeAttacher,
      secrets: (release) => secretValues(db, secretBox, release),
      db,
      runtime,
      leases,
      log: log.child({ component: 'reconciler' }),
      nodeId: LOCAL_NODE,
      installationId,
      network,
      privateNetworks,
      onRoutesChanged: (appId) => {
        edgeFeed.refresh(appId);
        // New instances are probed at once (their readiness gates the rollout and the edge).
        health.poke();
        privateNames.poke();
        swarmNames?.poke();
      },
      onCrashLoop: (app, process, until) => metrics.recordCrashLoop(app, process, until),
    });
    const metrics = createServerMetrics({ db, database, locks: database.locks, queue: () => scheduler.stats(), runtime, snapshotVersion: () => edgeFeed.current().version });
    const scheduler = createScheduler({
      db,
      runtime,
      reconciler,
      leases,
      locks: database.locks,
      installationId,
      log,
      concurrency: config.reconcileConcurrency,
      resyncMs: overrides.resyncMs,
      events,
      onPass: (seconds, outcome) => metrics.recordPass(seconds, outcome),
    });
    closers.push(() => scheduler.close());
    const health = createHealthMonitor({
      db,
      runtime,
      transactions,
      log,
      exec: (id, cmd, timeoutMs) => runtime.exec(id, cmd, { timeoutMs }),
      // The embedded database has no other server starting instances: the reread is a safety net.
      rereadMs: database.kind === 'pglite' ? 30_000 : undefined,
      onChange: (appId) => {
        edgeFeed.refresh(appId);
        scheduler.enqueue(appId);
        privateNames.poke();
        swarmNames?.poke();
      },
    });
    closers.push(() => health.close());
    // On a swarm, the names go to the node agents, which write them into the tasks' hosts files.
    const swarmNames = swarmServices && agentRoots ? createSwarmNames({ db, runtime, networks: privateNetworks, agents: agentRoots, log: log.child({ component: 'swarm-names' }), intervalMs: overrides.resyncMs ? Math.min(overrides.resyncMs, 2_000) : undefined }) : undefined;
    if (swarmNames) closers.push(() => swarmNames.close());
    const privateNames = createPrivateNames({ db, runtime, networks: privateNetworks, nodeId: LOCAL_NODE, log, firewall: privateFirewall, events, intervalMs: overrides.resyncMs ? Math.min(overrides.resyncMs, 2_000) : undefined });
    closers.push(() => privateNames.close());
    // Registry events belong to the admin org (known once it is bootstrapped, below).
    const onRegistryEvent = (e: RegistryEvent): void => {
      if (!systemOrg) return;
      events.record({ orgId: systemOrg, type: e.type, reason: 'registry', message: e.message, data: e.data }).catch((err: unknown) => log.warn({ err }, 'registry event not recorded'));
    };
    const local =
      config.registry.kind === 'local'
        ? createLocalRegistry({ dir: config.registry.dir, binary: config.registry.binary, listen: config.registry.listen, log, onEvent: onRegistryEvent })
        : null;
    const registry: Registry | null = local ?? (config.registry.kind === 'external' ? createExternalRegistry(config.registry.url, credentials) : null);
    if (registry) closers.push(() => registry.close());
    const registryStart = local?.start();
    const gate = createRegistryGate();
    const registryGc = registry
      ? createRegistryGc({ db, registry, gate, keep: config.registryGc.keep, graceMs: config.registryGc.graceMs, log: log.child({ component: 'registry-gc' }) })
      : null;

    const deploys = createDeployService({
      db,
      runtime,
      transactions,
      enqueue: (id) => scheduler.enqueue(id),
      onRoutesChanged: (id) => edgeFeed.refresh(id),
      ipPools: config.ips.pools,
      log: log.child({ component: 'deploys' }),
      registryImages: registry ? { host: registry.host, gate, client: createRegistryClient(registry) } : undefined,
      refuse: swarmServices ? refuseOnSwarm : undefined,
      previewPorts: config.environments?.previewPorts,
      seeder: createVolumeSeeder({ db, driver: volumeDriver ?? undefined, roots: volumeRoots ?? undefined, nodeId: LOCAL_NODE, log: log.child({ component: 'volume-seeds' }) }),
    });
    const ips = createIpService({ db, transactions, pools: config.ips.pools, sharedAddresses, cooldownMs: config.ips.cooldownMs });
    const deleter = createAppDeleter({
      runtime,
      transactions,
      ipCooldownMs: config.ips.cooldownMs,
      ipUnbindWaitMs: config.ips.unbindWaitMs,
      onDeleted: (id) => {
        edgeFeed.refresh(id);
        scheduler.enqueue(id);
        // Its claims went with its endpoints; the port modes they used are tidied away.
        void releaseUnusedPorts(db, log);
      },
    });
    const environments = createEnvironmentService({ db, transactions, deleter });
    const secrets = createSecretService({
      db,
      transactions,
      box: secretBox,
      release: deploys.withSecrets,
    });
    const reaper = createEnvironmentReaper({ db, events, environments, runtime, installationId, log: log.child({ component: 'reaper' }), now: overrides.now, intervalMs: config.environments?.reapIntervalMs, onNetworkRemoved: (name) => {
        privateNetworks.forget(name);
        // The chain drops the removed bridge's rules at once, not at the next round.
        privateNames.poke();
        swarmNames?.poke();
      },
    });
    closers.push(() => reaper.close());
    const volumes = volumeDriver
      ? createVolumeService({ db, transactions, runtime, driver: volumeDriver, roots: volumeRoots, nodeId: LOCAL_NODE, log: log.child({ component: 'volumes' }), enqueue: (id) => scheduler.enqueue(id), deletedRetentionMs: config.volumes.undeleteWindowMs, stopWriter: swarmVolumes ? (holder) => swarmVolumes.stopWriter(holder) : undefined, writerLive: swarmVolumes ? (group) => swarmVolumes.writerLive(group) : undefined, stopGroup: swarmVolumes ? (group) => swarmVolumes.stopGroup(group) : undefined })
      : undefined;
    const volumeMover = volumes
      ? createVolumeMover({
          db,
          transactions,
          runtime,
          service: volumes,
          log: log.child({ component: 'volume-mover' }),
          enqueue: (id) => scheduler.enqueue(id),
          onRoutesChanged: (id) => edgeFeed.refresh(id),
          locks: database.locks,
          retentionMs: config.volumes.moveRetentionMs,
          fault: parseMoveFault(config.volumes.moveFault),
          // On a swarm, Swarm starts every container: the reconciler starts the target there.
          prepared: swarmServices
            ? undefined
            : {
                starts: createPreparedStarts({ db, runtime, nodeId: LOCAL_NODE, installationId, network, privateNetworks, secrets: (release) => secretValues(db, secretBox, release), log: log.child({ component: 'volume-mover' }) }),
                installationId,
              },
        })
      : undefined;
    const volumeKeeper = volumes
      ? createVolumeKeeper({ db, transactions, service: volumes, mover: volumeMover, locks: database.locks, tickMs: config.volumes.keeperIntervalMs, log: log.child({ component: 'volume-keeper' }) })
      : undefined;
    if (volumeKeeper) closers.push(() => volumeKeeper.close());
    const acme = config.acme;
    const certificateKeeper = acme
      ? createCertificateKeeper({
          db, transactions, events, vault: keyVault, config: acme, log: log.child({ component: 'certificate-keeper' }), locks: database.locks,
          issuer: createAcmeIssuer({
            config: acme, vault: keyVault, dataDir: config.dataDir, challenges: acmeChallenges, log: log.child({ component: 'acme-issuer' }),
            waitForEdges: (challenge) => waitForEdgesApplied(db, challenge, { timeoutMs: acme.edgeWaitMs }),
          }),
          refresh: (appId) => edgeFeed.refresh(appId),
        })
      : undefined;
    if (certificateKeeper) closers.push(() => certificateKeeper.close());
    const reports = createEdgeReports({ db, transactions, log, enqueue: (id) => scheduler.enqueue(id), systemOrg: () => systemOrg });
    // Addresses of deleted apps cool down once the edges report they stopped serving them.
    const unbinder = createIpUnbinder({ db, transactions, log, cooldownMs: config.ips.cooldownMs });
    unbinder.start();
    closers.push(async () => unbinder.close());
    const edgeReports: EdgeReports = {
      async record(report) {
        const answer = await reports.record(report);
        unbinder.poke();
        return answer;
      },
    };

    // Builds need the Docker engine itself: a substituted runtime (tests, benchmarks) has none.
    const builds = overrides.runtime
      ? undefined
      : createBuildService({ builder: createDockerBuilder({ socketPath: config.dockerSocket }), registry, gate, log: log.child({ component: 'builds' }) });

    let ready = false;
    const api = createApi({
      db,
      events,
      runtime,
      deploys,
      deleter,
      edgeFeed,
      edgeReports,
      nodes: nodeDirectory,
      swarmPrivate: swarmServices ? () => (agentRoots ? agentRoots.offeredPorts() : Promise.resolve({})).then(swarmPrivateState) : undefined,
      metrics,
      log,
      ips,
      sharedAddresses,
      ready: () => ready,
      onDependencyDown: (dependency, err) => system.notice(dependency, err),
      bodyLimitBytes: config.bodyLimitBytes,
      builds,
      buildContextLimitBytes: config.buildContextLimitBytes,
      dataDir: config.dataDir,
      keyVault,
      volumes,
      volumeMover,
      environments,
      secrets,
      registryGc: registryGc ? { run: (o) => registryGc.run(o), ownerOrgId: () => systemOrg } : undefined,
    });
    const server = await listen(api.fetch, config.api.host, config.api.port, tls.kind === 'https' ? { cert: tls.cert, key: tls.key } : undefined);
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Streams (edge watch, event and log follows) never end on their own: cut them, or
          // close() would wait for them forever.
          if ('closeAllConnections' in server) server.closeAllConnections();
        }),
    );
    const addr = server.address() as AddressInfo;
    const apiUrl = `${tls.kind === 'https' ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

    const apiFingerprint = tls.kind === 'https' ? tls.fingerprint : undefined;
    const admin = await bootstrapAdmin({ db, dataDir: config.dataDir, cliConfigFile: config.cliConfigFile, apiUrl, fingerprint: apiFingerprint });
    // Containers started before Pier had its network join it before the edge's first snapshot,
    // which would otherwise route to none of them until the first reconcile pass.
    if (engineUp && !swarmServices) await joinNetwork({ db, runtime, network, log: log.child({ component: 'reconciler' }) });
    const edgeTokenFile = await bootstrapEdgeToken({ db, dataDir: config.dataDir, orgId: admin.orgId });
    systemOrg = admin.orgId;
    const registryStarted = await registryStart;
    if (registryStarted && !registryStarted.ok) warnings.push(`the image registry does not serve: ${registryStarted.problem}; deploys from a Dockerfile fail until it does (Pier keeps retrying)`);
    // The edge of `pier server` runs on this host: say now which pools it cannot bind, and how to fix it.
    if (overrides.localEdge && config.ips.pools.length) {
      const problems = await preflightPools(config.ips.pools);
      ips.setBindProblems(problems);
      for (const p of problems) {
        const err = poolNotBindable(p);
        log.error({ code: err.code, pool: p.pool, address: p.address, errno: p.errno, fix: p.fix }, 'edge cannot bind pool');
        warnings.push(`${err.message} (${err.code}): ${err.hint}`);
        await transactions
          .run((t) =>
            t.record({ orgId: admin.orgId, type: 'ip.pool_unbindable', reason: p.errno, message: `${err.message}; fix: ${p.fix}`, data: { code: err.code, ...p } }),
          )
          .catch((e: unknown) => log.warn({ err: e }, 'pool preflight event not recorded'));
      }
    }
    if (registryGc && config.registryGc.intervalMs !== null) {
      const task = startRegistryGcTask({
        run: () => registryGc.run(),
        intervalMs: config.registryGc.intervalMs,
        log: log.child({ component: 'registry-gc' }),
        onEvent: (e) => {
          if (systemOrg) events.record({ orgId: systemOrg, type: e.type, reason: 'registry', message: e.message, data: e.data }).catch((err: unknown) => log.warn({ err }, 'registry event not recorded'));
        },
      });
      closers.push(async () => task.close());
    }
    await edgeFeed.rebuild();
    // Moves a dead server left half-done: rolled back to their source, or finished once switched.
    await volumeMover?.recover().catch((err: unknown) => log.error({ err }, 'interrupted volume moves not recovered'));
    scheduler.start();
    reaper.start();
    health.start();
    if (!swarmServices) privateNames.start();
    swarmNames?.start();
    system.start();
    volumeKeeper?.start();
    if (certificateKeeper) {
      // A deploy that adds hostnames changes the snapshot: look at once rather than at the next check.
      edgeFeed.subscribe(() => certificateKeeper.wake());
      certificateKeeper.start();
    }
    ready = true;
    await system.record({
      type: 'server.started',
      reason: 'start',
      message: `pier server ${PIER_VERSION} started (API ${apiUrl}, ${database.kind === 'pglite' ? 'embedded database' : 'PostgreSQL'}${engineUp ? '' : ', container engine not answering'})`,
      data: { version: PIER_VERSION, apiUrl, database: database.kind, roles: config.roles, ...(apiFingerprint ? { apiFingerprint } : {}) },
    });
    // Closers run last first: this one while the database is still open.
    closers.push(() => system.record({ type: 'server.stopping', reason: 'stop', message: `pier server ${PIER_VERSION} is stopping`, data: { version: PIER_VERSION } }));
    log.info({ apiUrl, database: database.kind, installation: installationId }, 'api ready');

    return {
      apiUrl,
      databaseKind: database.kind,
      adminTokenFile: admin.tokenFile,
      edgeTokenFile,
      apiFingerprint,
      warnings,
      internals: { scheduler, edgeFeed, db, registry, reaper },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Pier's network: created or reused. A network of that name that Pier did not make, or a subnet
 * that collides, stops the start (the operator must choose); an engine error is a warning.
 */
async function ensureNetwork(runtime: Runtime, network: NetworkSpec, log: Logger, warnings: string[]): Promise<void> {
  try {
    const info = await runtime.ensureNetwork(network);
    if (info.created) log.info({ network: info.name, subnet: info.subnet }, 'network created');
    if (info.subnet !== network.subnet) {
      warnings.push(`the network ${info.name} exists with subnet ${info.subnet ?? 'unknown'}, not ${network.subnet}; instances get addresses from ${info.subnet ?? 'it'}`);
    }
  } catch (err) {
    if (err instanceof PierError && (err.code === 'E_NETWORK_CONFLICT' || err.code === 'E_NETWORK_SUBNET_CONFLICT')) throw err;
    warnings.push(`${(err as Error).message}; the network ${network.name} is made at the first start`);
  }
}

/** The installation's id, made once and kept in the database. */
async function installation(db: Db): Promise<string> {
  await db.insert(settings).values({ key: 'installation_id', value: newId('inst') }).onConflictDoNothing();
  const [row] = await db.select().from(settings).where(eq(settings.key, 'installation_id'));
  if (!row) throw new Error('installation id missing after insert');
  return row.value;
}

function listen(fetch: Parameters<typeof serve>[0]['fetch'], hostname: string, port: number, tls: { cert: string; key: string } | undefined): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    // The WebSocket server only completes upgrades the routes accept (interactive exec).
    const websocket = { server: new WebSocketServer({ noServer: true }) };
    const server = tls
      ? serve({ fetch, hostname, port, websocket, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }, () => resolve(server))
      : serve({ fetch, hostname, port, websocket }, () => resolve(server));
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new PierError('E_LISTEN', `cannot listen on ${hostname}:${port}: ${err.code ?? err.message}`, {
          hint: err.code === 'EADDRINUSE' ? 'another process holds the port: stop it or pass --api-listen HOST:PORT' : undefined,
          cause: err,
        }),
      );
    });
  });
}
