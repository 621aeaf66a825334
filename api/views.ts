// The shapes the API returns. The CLI imports these types (types only), so both sides agree.
import type { EnvironmentEndpointView, EnvironmentView } from './environment-views.js';
import type { App, Deployment, Endpoint, Event, Instance, Release, Token, TokenScope } from '../db/schema/index.js';
import { desiredCounts, type CountSource } from './desired-counts.js';
import { bindAddressesOf } from './endpoint-bindings.js';
import type { IpRecord, PoolView } from './ip-service.js';

export type { PoolView };
import type { Manifest } from './manifest.js';
import { describeCheck } from './scheduler/health-probe.js';
import { effectiveCheck } from './scheduler/readiness-check.js';
import type { Served } from './served-state.js';

export interface AppView {
  id: string;
  name: string;
  currentRelease: number | null;
  createdAt: string;
  /** Set once `pier apps delete` deleted it (its events stay readable by its id). */
  deletedAt: string | null;
}

/** What `DELETE /v1/apps/:app` did. */
export interface AppDeletedView {
  app: AppView;
  /** Instances told to stop. */
  instances: number;
  /** Public ports freed. */
  ports: number[];
  /** Dedicated addresses released (they cool down before another app gets them). */
  addresses: string[];
  tokensRevoked: number;
  deploymentsCancelled: string[];
  /** Containers still on the engine when the wait ended: 0 when all are gone, null when the engine did not answer. */
  containersRemaining: number | null;
}

export interface ReleaseView {
  id: string;
  version: number;
  image: string;
  imageDigest: string;
  description: string;
  createdAt: string;
}

export interface DeploymentView {
  id: string;
  app: string;
  release: number;
  state: Deployment['state'];
  progress: Deployment['progress'];
  failureReason: string | null;
  failure: Record<string, unknown> | null;
  createdAt: string;
  finishedAt: string | null;
}

export interface InstanceView {
  id: string;
  process: string;
  release: number;
  desired: Instance['desiredState'];
  state: Instance['observedState'];
  health: string;
  containerId: string | null;
  /** The node (Docker engine) it runs on: "local" on a single engine. */
  node: string;
  /** The container's address on Pier's network, where the edge and the checks reach it. */
  address: string | null;
  restartCount: number;
  lastExitCode: number | null;
  lastReason: string | null;
  startedAt: string | null;
  stoppedAt: string | null;
}

export interface EndpointView {
  /** The endpoint's id (`ep_…`), as edges report it. */
  id: string;
  /** `app/port`, the label edges log it with. */
  name: string;
  port: number;
  process: string;
  target: number;
  proxyProtocol: Endpoint['proxyProtocol'];
  /** "private": bound on no address; only `pier port-forward` and `pier connect` reach it. */
  access: Endpoint['access'];
  /** Where the edge serves it, e.g. `127.0.0.1:9000` and `[::1]:9000`. */
  addresses: string[];
  /** The same, one entry per address: its family, and whether it is shared or the app's own. */
  bind: EndpointBindView[];
  /** Grows when the settings an edge applies to its listener change. */
  revision: number;
  /** What the live edges report: served, failed (with each edge's error), pending, or no-edge. */
  served: Served;
}

/** One address an endpoint is served on. */
export interface EndpointBindView {
  address: string;
  port: number;
  family: 'ipv4' | 'ipv6';
  kind: 'shared' | 'dedicated';
}

/** An address (`pier ips`): a shared one of the edge, or a dedicated one from a pool. */
export type IpView = IpRecord;

/** An edge that reported to this API (`GET /v1/edges`). */
export interface EdgeView {
  id: string;
  name: string;
  version: string;
  pid: number;
  workers: number;
  io: string | null;
  /** Reported within the last 30 s. */
  live: boolean;
  /** The snapshot version every worker serves (null before any). */
  applied: number | null;
  /** True when that is this API's current snapshot. */
  current: boolean;
  lastReportAgeSeconds: number;
  firstSeenAt: string;
  lastSeenAt: string;
  lastError: string | null;
  endpoints: { total: number; serving: number; failed: number };
  /** Endpoints (of apps this token sees) it cannot serve, with the bind error. */
  failures: EdgeFailureView[];
}

export interface EdgeFailureView {
  endpoint: string;
  /** `app/port`. */
  name: string;
  address: string;
  port: number;
  code: string;
  message: string;
  retryAt: string | null;
}

export interface EventView {
  id: number;
  time: string;
  /** The app's name; empty for a system event (the engine, the database, an edge, the server). */
  app: string;
  type: string;
  reason: string;
  message: string;
  instance: string | null;
  deployment: string | null;
  data: Record<string, unknown>;
}

/** A process of the current release: how many should run, why that many, and how many are ready. */
export interface ProcessView {
  process: string;
  desired: number;
  /** Where `desired` came from: the manifest's `count`, `pier scale` (and when), or the default of 1. */
  desiredFrom: CountSource;
  ready: number;
  /** The check instances run under, in words; the implicit readiness check when the manifest has none. */
  check: string | null;
}

export interface StatusView {
  app: AppView;
  release: ReleaseView | null;
  /** Per process of the current release (empty without one). */
  processes: ProcessView[];
  deployment: DeploymentView | null;
  instances: InstanceView[];
  endpoints: EndpointView[];
}

export interface DeployView {
  app: AppView;
  release: ReleaseView;
  deployment: DeploymentView;
  created: boolean;
  /** The environment deployed to (api/environment-views.ts). */
  environment?: EnvironmentView | undefined;
  /** The app's endpoints in that environment, with their public ports. */
  endpoints?: EnvironmentEndpointView[] | undefined;
}

export interface ErrorBody {
  error: { code: string; message: string; hint?: string; details?: unknown };
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function appView(app: App, currentVersion: number | null): AppView {
  return { id: app.id, name: app.name, currentRelease: currentVersion, createdAt: app.createdAt.toISOString(), deletedAt: iso(app.deletedAt) };
}

export function releaseView(r: Release): ReleaseView {
  return { id: r.id, version: r.version, image: r.image, imageDigest: r.imageDigest, description: r.description, createdAt: r.createdAt.toISOString() };
}

export function deploymentView(d: Deployment, appName: string, version: number): DeploymentView {
  return {
    id: d.id,
    app: appName,
    release: version,
    state: d.state,
    progress: d.progress,
    failureReason: d.failureReason,
    failure: d.failure ?? null,
    createdAt: d.createdAt.toISOString(),
    finishedAt: iso(d.finishedAt),
  };
}

export function instanceView(i: Instance, version: number, nodeName: (nodeId: string) => string): InstanceView {
  return {
    id: i.id,
    process: i.process,
    release: version,
    desired: i.desiredState,
    state: i.observedState,
    health: i.health,
    containerId: i.containerId ? i.containerId.slice(0, 12) : null,
    node: nodeName(i.nodeId),
    address: i.address,
    restartCount: i.restartCount,
    lastExitCode: i.lastExitCode,
    lastReason: i.lastReason,
    startedAt: iso(i.startedAt),
    stoppedAt: iso(i.stoppedAt),
  };
}

/** The processes of `release` for `app`, with ready counts from the instances that run. */
export function processViews(app: Pick<App, 'scale' | 'scaledAt'>, release: Release | null, instances: Instance[]): ProcessView[] {
  if (!release) return [];
  const manifest = release.manifest as Manifest;
  return desiredCounts(app, manifest, release.version).map(({ process, count, source }) => {
    const check = effectiveCheck(manifest, process);
    const ready = instances.filter(
      (i) => i.releaseId === release.id && i.process === process && i.desiredState === 'running' && i.observedState === 'running' && (i.health === 'none' || i.health === 'healthy'),
    ).length;
    return { process, desired: count, desiredFrom: source, ready, check: check ? describeCheck(check) : null };
  });
}

export function endpointView(e: Endpoint, shared: string[], about: { app: string; served: Served }): EndpointView {
  const sharedSet = new Set(shared);
  // A literal binding is the app's dedicated address; a marker (or none) the edge's shared ones.
  const bind: EndpointBindView[] = (e.access === 'private' ? [] : bindAddressesOf(e.bindings, shared)).map((address) => ({
    address,
    port: e.port,
    family: address.includes(':') ? 'ipv6' : 'ipv4',
    kind: sharedSet.has(address) && !e.bindings.includes(address) ? 'shared' : 'dedicated',
  }));
  return {
    id: e.id,
    name: `${about.app}/${e.port}`,
    port: e.port,
    process: e.process,
    target: e.targetPort,
    proxyProtocol: e.proxyProtocol,
    access: e.access,
    addresses: bind.map((b) => (b.family === 'ipv6' ? `[${b.address}]:${e.port}` : `${b.address}:${e.port}`)),
    bind,
    revision: e.revision,
    served: about.served,
  };
}

export function eventView(e: Event, app: string): EventView {
  return {
    id: e.id,
    time: e.time.toISOString(),
    app,
    type: e.type,
    reason: e.reason,
    message: e.message,
    instance: e.instanceId,
    deployment: e.deploymentId,
    data: e.data,
  };
}

/** One line of `GET /v1/apps/:app/logs`, tagged with where it came from. */
export interface LogLineView {
  time: string;
  instance: string;
  process: string;
  /** The release's version number. */
  release: number;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface ExecResultView {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when stdout or stderr passed 1 MiB and the rest was dropped. */
  truncated: boolean;
}

/** A machine instances run on: the one engine ("local"), or a swarm node. */
export interface NodeView {
  id: string;
  /** "local" on one engine; the node's host name on a swarm. */
  name: string;
  /** Where its instances are reached: a swarm node's address, the engine's publish address on one. */
  address: string;
  /** ready, down, unknown or disconnected (Swarm's words). */
  state: string;
  availability: 'active' | 'pause' | 'drain';
  role: 'engine' | 'manager' | 'worker';
  labels: Record<string, string>;
  /** What the node offers (Swarm's figures); null on one engine. */
  capacity: { cpus: number; memoryBytes: number } | null;
  engineVersion: string | null;
  /** Pier's instances that run there now. */
  instances: number;
}

/** An API token, without its secret (only its hash is stored). */
export interface TokenView {
  id: string;
  name: string;
  scope: TokenScope;
  /** The app it is bound to, or null for an org-wide token. */
  app: string | null;
  /** The environments it is bound to (`pr-*`), when it is. */
  environments?: string | undefined;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /** When it was last used (kept to the minute), or null when never. */
  lastUsedAt: string | null;
}

export function tokenView(t: Token, appName: string | null): TokenView {
  return { id: t.id, name: t.name, scope: t.scope, app: appName, ...(t.environments ? { environments: t.environments } : {}), createdAt: t.createdAt.toISOString(), expiresAt: iso(t.expiresAt), revokedAt: iso(t.revokedAt), lastUsedAt: iso(t.lastUsedAt) };
}
