// The control plane wired as api/server.ts wires it — event log, transactions, leases, reconciler,
// scheduler, health monitor, deploy service, edge feed — on a fresh test database and the in-memory
// runtime, for fast tests of the scheduler's logic. `pass(appId)` runs one reconcile the way the
// scheduler does (lock, lease, reconcile, release) so a test can step through a rollout.
import type { SecretBox } from '../../api/secret-box.js';
import { createSecretService, secretValues } from '../../api/secret-service.js';
import { parseIpPools } from '../../api/ip-pool.js';
import { createIpService } from '../../api/ip-service.js';
import type { TestContext } from 'node:test';
import type { Database, Db } from '../../db/database.js';
import { pino } from 'pino';
import { createApi } from '../../api/app.js';
import type { AuthContext } from '../../api/auth.js';
import { createAppDeleter, type AppDeleter } from '../../api/app-deleter.js';
import { createDeployService, type DeployResult, type DeployService } from '../../api/deploy-service.js';
import { createEdgeFeed, type EdgeFeed } from '../../api/edge-feed.js';
import { createEdgeReports, type EdgeReports } from '../../api/edge-reports.js';
import { createEventLog, type EventLog } from '../../api/event-log.js';
import { parseManifest } from '../../api/manifest.js';
import { createMemoryRuntime, type MemoryRuntime, type MemoryRuntimeOptions } from '../../api/runtime/memory-runtime.js';
import { DEFAULT_NETWORK, DEFAULT_NETWORK_SUBNET } from '../../api/config.js';
import { LABELS, type NetworkSpec } from '../../api/runtime/runtime.js';
import { createAppLeases, type AppLeases } from '../../api/scheduler/app-leases.js';
import { createHealthMonitor } from '../../api/scheduler/health-monitor.js';
import { createReconciler, type Reconciler, type ReconcileResult } from '../../api/scheduler/reconciler.js';
import { createScheduler, type Scheduler } from '../../api/scheduler/scheduler.js';
import { createSwarmReconciler, refuseOnSwarm } from '../../api/scheduler/swarm-reconciler.js';
import type { SwarmServices } from '../../api/runtime/swarm-services.js';
import type { Release } from '../../db/schema/index.js';
import { createTransactions, type Checkpoint, type Transactions } from '../../api/transactions.js';
import { nodes } from '../../db/schema/index.js';
import { createVolumeAttacher } from '../../api/volumes/volume-attacher.js';
import type { VolumeRoots } from '../../api/volumes/volume-roots.js';
import { createVolumeSeeder } from '../../api/volume-seeds.js';
import type { VolumeDriver } from '../../api/volumes/volume-driver.js';
import { captureLog, type CapturedLog } from './log-capture.js';
import { createOrg, createToken } from './test-api.js';
import { createTestDb } from './test-db.js';

export const IMAGE = 'pier-test/busybox:1';
export const INSTALLATION = 'inst_test';

export interface ControlPlane {
  database: Database;
  db: Db;
  runtime: MemoryRuntime;
  events: EventLog;
  transactions: Transactions;
  leases: AppLeases;
  reconciler: Reconciler;
  scheduler: Scheduler;
  deploys: DeployService;
  deleter: AppDeleter;
  edgeFeed: EdgeFeed;
  edgeReports: EdgeReports;
  logs: CapturedLog;
  orgId: string;
  auth: AuthContext;
  /** An admin token's secret, for requests through an API built on this database. */
  adminToken: string;
  /** Routes changed (the reconciler told the edge feed), counted. */
  routeChanges: () => number;
  /** Stops the health monitor (waiting for its probes), so a test can change instances unobserved. */
  stopHealth(): Promise<void>;
  deploy(toml: string): Promise<DeployResult>;
  /** One reconcile pass of the app, as the scheduler runs it; null when the lock was taken. */
  pass(appId: string): Promise<ReconcileResult | null>;
  /** Passes until `done` holds (bounded); fails with `what` otherwise. */
  converge(appId: string, done: () => Promise<boolean>, what: string): Promise<void>;
  /** A request to the HTTP API built on these parts (the admin token unless another is given). */
  request(path: string, options?: { method?: string; body?: unknown; token?: string; headers?: Record<string, string> }): Promise<Response>;
}

export interface ControlPlaneOptions {
  runtime?: MemoryRuntimeOptions;
  checkpoint?: Checkpoint;
  concurrency?: number;
  /** Let the scheduler run the passes deploys ask for (default: the test runs passes itself). */
  scheduled?: boolean;
  /**
   * Run a health monitor (default: yes, ticking every 20 ms), as the server does: instances behind
   * endpoints are ready only once its readiness check saw them listen. A test of the monitor
   * itself passes false and makes its own.
   */
  health?: boolean;
  /** Address pools (CIDRs) for the deploy service and the API, as `--ip-pool` gives them. */
  ipPools?: string[];
  /** Volumes on this driver (attached by the reconciler); without it, no volumes. */
  volumeDriver?: VolumeDriver;
  /** Every storage root, `volumeDriver` as its default (as --volume-root gives them); without it, that one root. */
  volumeRoots?: VolumeRoots;
  /** Secrets sealed with this box (the API's secret routes and the containers' env); without it, secrets are refused. */
  secretBox?: SecretBox;
  /** Reconcile on this swarm (the swarm reconciler, as `--runtime swarm`) instead of the runtime. */
  swarm?: SwarmServices;
}

export const NETWORK: NetworkSpec = { name: DEFAULT_NETWORK, subnet: DEFAULT_NETWORK_SUBNET, labels: { [LABELS.managed]: 'true' } };

export async function createControlPlane(t: TestContext, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const database = await createTestDb(t);
  const { db } = database;
  const logs = captureLog('debug');
  const log = logs.log;
  const runtime = createMemoryRuntime({ images: [IMAGE], ...options.runtime });
  await runtime.ensureNetwork(NETWORK);
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events, checkpoint: options.checkpoint });
  const leases = createAppLeases({ db, transactions, holder: 'test' });
  await db.insert(nodes).values({ id: 'node_local', name: 'local', endpoint: 'memory://' });
  const edgeFeed = createEdgeFeed({ db, log, sharedAddresses: ['127.0.0.1'] });
  let routeChanges = 0;
  /** The health monitor's poke, once it is made (below), as the server wires it. */
  let pokeHealth = (): void => undefined;
  const onRoutesChanged = (appId: string): void => {
    routeChanges++;
    edgeFeed.refresh(appId);
    pokeHealth();
  };
  const secretsOf = options.secretBox ? (release: Release) => secretValues(db, options.secretBox as SecretBox, release) : undefined;
  const reconciler = options.swarm
    ? createSwarmReconciler({ db, services: options.swarm, runtime, leases, log, installationId: INSTALLATION, onRoutesChanged, secrets: secretsOf })
    : createReconciler({
        volumes: options.volumeDriver ? createVolumeAttacher({ db, runtime, leases, driver: options.volumeDriver, roots: options.volumeRoots, nodeId: 'node_local', installationId: INSTALLATION }) : undefined,
        db,
        runtime,
        leases,
        log,
        nodeId: 'node_local',
        installationId: INSTALLATION,
        network: NETWORK,
        secrets: secretsOf,
        onRoutesChanged,
      });
  const scheduler = createScheduler({ db, runtime, reconciler, leases, locks: database.locks, installationId: INSTALLATION, log, concurrency: options.concurrency ?? 4, retryMinMs: 50, retryMaxMs: 500, events });
  t.after(() => scheduler.close());
  t.after(() => edgeFeed.close());
  let monitor: { close(): Promise<void> } | undefined;
  if (options.health !== false) {
    const health = createHealthMonitor({
      db,
      runtime,
      transactions,
      log,
      exec: (id, cmd, timeoutMs) => runtime.exec(id, cmd, { timeoutMs }),
      onChange: (appId) => {
        edgeFeed.refresh(appId);
        if (options.scheduled) scheduler.enqueue(appId);
      },
      tickMs: 20,
      retryMinMs: 20,
      retryMaxMs: 200,
    });
    health.start();
    pokeHealth = () => health.poke();
    t.after(() => health.close());
    monitor = health;
  }
  const ipPools = parseIpPools(options.ipPools ?? [], ['127.0.0.1']);
  const seeder = createVolumeSeeder({ db, driver: options.volumeDriver, roots: options.volumeRoots, nodeId: 'node_local' });
  const deploys = createDeployService({ db, runtime, transactions, ipPools, seeder, refuse: options.swarm ? refuseOnSwarm : undefined, enqueue: (id) => (options.scheduled ? scheduler.enqueue(id) : undefined), onRoutesChanged: (id) => edgeFeed.refresh(id) });
  const edgeReports = createEdgeReports({ db, transactions, log, enqueue: (id) => (options.scheduled ? scheduler.enqueue(id) : undefined) });
  const deleter = createAppDeleter({
    runtime,
    transactions,
    onDeleted: (id) => {
      edgeFeed.refresh(id);
      if (options.scheduled) scheduler.enqueue(id);
    },
  });
  const orgId = await createOrg(db, `org-${Math.random().toString(36).slice(2, 8)}`);
  const adminToken = await createToken(db, orgId, { scope: 'admin' });
  const auth: AuthContext = { tokenId: 'tok_test', orgId, scope: 'admin', appId: null };

  const ips = createIpService({ db, transactions, pools: ipPools, sharedAddresses: ['127.0.0.1'], cooldownMs: 3_600_000 });
  const secrets = options.secretBox ? createSecretService({ db, transactions, box: options.secretBox, release: deploys.withSecrets }) : undefined;
  const api = createApi({ db, events, runtime, deploys, deleter, edgeFeed, edgeReports, ips, log: pino({ level: 'silent' }), sharedAddresses: ['127.0.0.1'], ready: () => true, servingHealthTtlMs: 0, secrets });

  async function pass(appId: string): Promise<ReconcileResult | null> {
    const lock = await database.locks.tryLock(`pier:reconcile:${appId}`);
    if (!lock) return null;
    try {
      const lease = await leases.acquire(appId, lock.signal);
      return lease ? await reconciler.reconcile(appId, lease) : null;
    } finally {
      await lock.release();
    }
  }

  return {
    database,
    db,
    runtime,
    events,
    transactions,
    leases,
    reconciler,
    scheduler,
    deploys,
    deleter,
    edgeFeed,
    edgeReports,
    logs,
    orgId,
    auth,
    adminToken,
    routeChanges: () => routeChanges,
    stopHealth: async () => monitor?.close(),
    deploy: (toml) => deploys.deploy(auth, parseManifest(toml)),
    pass,
    async converge(appId, done, what) {
      // Bounded by time, not by a count of passes: a rolling step of a process without a check
      // waits MIN_UPTIME_MS (1 s) per instance, and a loaded machine makes each pass slower.
      const until = Date.now() + 30_000;
      while (Date.now() < until) {
        if (await done()) return;
        await pass(appId);
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`gave up waiting for: ${what}`);
    },
    async request(path, req = {}) {
      const body = req.body === undefined ? undefined : JSON.stringify(req.body);
      return api.request(path, {
        method: req.method ?? (body === undefined ? 'GET' : 'POST'),
        headers: { authorization: `Bearer ${req.token ?? adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...req.headers },
        body,
      });
    },
  };
}

/** A manifest of one process running an echo server, with one endpoint. */
export function echoManifest(app: string, options: { count?: number; port?: number; cmd?: string[]; env?: Record<string, string>; extra?: string } = {}): string {
  const cmd = options.cmd ?? ['nc', '-ll', '-p', '8080', '-e', 'cat'];
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  return [
    `app = "${app}"`,
    `image = "${IMAGE}"`,
    ...(env.length ? ['[env]', ...env] : []),
    '[processes.web]',
    `cmd = ${JSON.stringify(cmd)}`,
    `count = ${options.count ?? 2}`,
    ...(options.extra ? [options.extra] : []),
    '[[endpoints]]',
    'process = "web"',
    `port = ${options.port ?? 9000}`,
    'target = 8080',
    '[deploy]',
    'drain = "0s"',
  ].join('\n');
}
