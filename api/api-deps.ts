// What the HTTP routes need, built once by the server's entry point.
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import type { AppDeleter } from './app-deleter.js';
import type { DeployService } from './deploy-service.js';
import type { EdgeFeed } from './edge-feed.js';
import type { EdgeReports } from './edge-reports.js';
import type { EventLog } from './event-log.js';
import type { Runtime } from './runtime/runtime.js';
import type { ServerMetrics } from './server-metrics.js';
import type { VolumeService } from './volumes/volume-service.js';

export interface ApiDeps {
  db: Db;
  events: EventLog;
  runtime: Runtime;
  deploys: DeployService;
  deleter: AppDeleter;
  edgeFeed: EdgeFeed;
  /** Takes the edges' reports of what they serve. */
  edgeReports: EdgeReports;
  log: Logger;
  /** The edge's shared addresses, to tell users where endpoints are served. */
  sharedAddresses: string[];
  /** Readiness: false until migrations ran and the scheduler started. */
  ready: () => boolean;
  /** The server's figures for GET /metrics (server mode); without them it shows the API's only. */
  metrics?: ServerMetrics | undefined;
  /** How long /healthz reuses its count of served endpoints (default 2 s; tests use 0). */
  servingHealthTtlMs?: number | undefined;
  /** Volumes and snapshots; without it their routes answer E_VOLUMES_UNAVAILABLE. */
  volumes?: VolumeService | undefined;
  /** Largest request body accepted (413 above); api/app.ts has the default. */
  bodyLimitBytes?: number | undefined;
}
