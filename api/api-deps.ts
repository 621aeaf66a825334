// What the HTTP routes need, built once by the server's entry point.
import type { KeyVault } from './certificates/key-vault.js';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { AppDeleter } from './app-deleter.js';
import type { BuildService } from './build-service.js';
import type { DeployService } from './deploy-service.js';
import type { EdgeFeed } from './edge-feed.js';
import type { EdgeReports } from './edge-reports.js';
import type { EnvironmentService } from './environment-service.js';
import type { EventLog } from './event-log.js';
import type { SecretService } from './secret-service.js';
import type { IpService } from './ip-service.js';
import type { NodeDirectory } from './node-directory.js';
import type { GcResult } from './registry/registry-gc.js';
import type { Runtime } from './runtime/runtime.js';
import type { ServerMetrics } from './server-metrics.js';
import type { VolumeService } from './volumes/volume-service.js';
import type { VolumeMover } from './volumes/volume-mover.js';

export interface ApiDeps {
  db: Db;
  events: EventLog;
  runtime: Runtime;
  deploys: DeployService;
  deleter: AppDeleter;
  edgeFeed: EdgeFeed;
  /** Takes the edges' reports of what they serve. */
  edgeReports: EdgeReports;
  /** The nodes instances run on: a swarm's nodes; the one engine (the nodes table) when unset. */
  nodes?: NodeDirectory | undefined;
  /**
   * On a swarm (swarm-private.ts), from the node agents: what its private networks do not do, and
   * the IPv6 address each task got from its node's agent (by container id), for `pier describe app`.
   */
  swarmPrivate?: (() => Promise<{ limits: string; taskIpv6: Record<string, string> }>) | undefined;
  log: Logger;
  /** Dedicated addresses (`/v1/ips`); without it, a service with no pools is made. */
  ips?: IpService | undefined;
  /** The edge's shared addresses, to tell users where endpoints are served. */
  sharedAddresses: string[];
  /** Told when a /healthz probe finds the database or the engine down (system events). */
  onDependencyDown?: ((dependency: 'database' | 'runtime', err: unknown) => void) | undefined;
  /** Readiness: false until migrations ran and the scheduler started. */
  ready: () => boolean;
  /** The server's figures for GET /metrics (server mode); without them it shows the API's only. */
  metrics?: ServerMetrics | undefined;
  /** How long /healthz reuses its count of served endpoints (default 2 s; tests use 0). */
  servingHealthTtlMs?: number | undefined;
  /** Volumes and snapshots; without it their routes answer E_VOLUMES_UNAVAILABLE. */
  volumes?: VolumeService | undefined;
  /** `pier volumes move` (api/volumes/volume-mover.ts); with volumes. */
  volumeMover?: VolumeMover | undefined;
  /** Largest request body accepted (413 above); api/app.ts has the default. */
  bodyLimitBytes?: number | undefined;
  /** Builds from a Dockerfile (absent: the server cannot build; POST /v1/builds is 503). */
  builds?: BuildService | undefined;
  /** Largest build context accepted (413 above); api/routes/builds.ts has the default. */
  buildContextLimitBytes?: number | undefined;
  /** Registry garbage collection (absent: no registry); only the server's own org may run it. */
  registryGc?: { run(options: { dryRun: boolean }): Promise<GcResult>; ownerOrgId(): string | undefined } | undefined;
  /** Where uploaded build contexts are kept while they build (under it, `builds/`). */
  dataDir?: string | undefined;
  /** Seals and opens certificates' private keys (api/certificates/key-vault.ts); without it `/v1/.../certs` is not served. */
  keyVault?: KeyVault | undefined;
  /** Environments (api/environment-service.ts); without it, one is made over db and deleter. */
  environments?: EnvironmentService | undefined;
  /** Secrets (api/secret-service.ts); without it, one without a key (secrets refused). */
  secrets?: SecretService | undefined;
}
