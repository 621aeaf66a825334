// The server's figures for /metrics, read at scrape time: the scheduler (queue, reconcile passes and
// their duration, the lock session), the database (probe, pool sessions) and the edges, from each
// edge's latest report (per edge: live, applied version, report age, failures; per endpoint of the
// scraping token's org: serving, connections, bytes, connect errors). The API's own request figures
// are request-metrics.ts.
import { and, eq, ne, sql } from 'drizzle-orm';
import { countProcFds, readSoftLimit } from '../proxy/fd-budget.js';
import type { AdvisoryLocks } from '../db/advisory-locks.js';
import type { Db } from '../db/database.js';
import { apps, deployments, endpoints } from '../db/schema/index.js';
import type { AuthContext } from './auth.js';
import { counter, Counter, gauge, Histogram, type MetricFamily } from './prometheus-text.js';
import type { Runtime } from './runtime/runtime.js';
import type { PassOutcome } from './scheduler/scheduler.js';
import type { WorkQueueStats } from './scheduler/work-queue.js';
import { readEdges, servedState, type ServedState } from './served-state.js';

export interface ServerMetricsOptions {
  db: Db;
  database: { kind: 'postgres' | 'pglite'; pool: { max: number; applicationName: string | null } };
  locks: AdvisoryLocks;
  /** The scheduler's queue now (it is built after this, hence a function). */
  queue: () => WorkQueueStats;
  /** The container engine, probed at each scrape (pier_runtime_up). */
  runtime?: Runtime | undefined;
  /** This API's current edge snapshot version (pier_snapshot_version, pier_edge_current). */
  snapshotVersion?: (() => number) | undefined;
}

export interface ServerMetrics {
  /** The scheduler's onPass. */
  recordPass(seconds: number, outcome: PassOutcome): void;
  /** The reconciler's onCrashLoop: the process is held back until `until`. */
  recordCrashLoop(app: string, process: string, until: Date): void;
  families(auth: AuthContext): Promise<MetricFamily[]>;
}

export function createServerMetrics(options: ServerMetricsOptions): ServerMetrics {
  const { db } = options;
  const passes = new Counter('pier_scheduler_reconciles_total', 'Reconcile passes run by this server');
  const failed = new Counter('pier_scheduler_reconciles_failed_total', 'Reconcile passes that failed (retried with backoff), by reason: error, or lock_lost');
  const duration = new Histogram('pier_scheduler_reconcile_duration_seconds', 'Duration of a reconcile pass');
  const crashLoops = new Counter('pier_instance_crash_loops_total', 'Crash loops announced by this server (instance.crash-loop events), by app and process');
  /** Processes in crash-loop backoff: until when; kept at 0 for an hour after, then dropped. */
  const backoffs = new Map<string, { app: string; process: string; until: number }>();
  // Zero until the first one, so a query over them never sees "no data".
  passes.inc({}, 0);
  failed.inc({ reason: 'error' }, 0);
  failed.inc({ reason: 'lock_lost' }, 0);

  async function database(): Promise<MetricFamily[]> {
    const started = performance.now();
    const up = await db.execute(sql`select 1`).then(
      () => 1,
      () => 0,
    );
    const probe = (performance.now() - started) / 1000;
    const out = [
      gauge('pier_db_up', 'The database answered a probe during this scrape', [{ labels: { kind: options.database.kind }, value: up }]),
      gauge('pier_db_probe_seconds', 'Time the probe took', [{ value: probe }]),
      gauge('pier_db_pool_max', "Connections the API's query pool may open", [{ value: options.database.pool.max }]),
    ];
    const name = options.database.pool.applicationName;
    if (up && name) {
      const rows = (await db
        .execute(sql`select coalesce(state, 'unknown') as state, count(*)::int as n from pg_stat_activity where application_name = ${name} group by 1`)
        .catch(() => [])) as unknown as { state: string; n: number }[];
      const byState = new Map(['active', 'idle', 'idle in transaction'].map((s) => [s, 0]));
      for (const r of rows) byState.set(r.state, Number(r.n));
      out.push(gauge('pier_db_pool_connections', "The query pool's open sessions on the server, by state (pg_stat_activity)", [...byState].map(([state, value]) => ({ labels: { state }, value }))));
    }
    return out;
  }

  async function scheduler(): Promise<MetricFamily[]> {
    const q = options.queue();
    const lock = await options.locks.status();
    return [
      gauge('pier_scheduler_queue', 'Apps in the reconcile queue: running now, waiting for a slot, or waiting for a delayed retry', [
        { labels: { state: 'running' }, value: q.running },
        { labels: { state: 'waiting' }, value: q.waiting },
        { labels: { state: 'delayed' }, value: q.delayed },
      ]),
      passes.family(),
      failed.family(),
      duration.family(),
      gauge('pier_lock_session_up', 'The session holding the reconcile locks answered a probe (1), or not (0)', [{ labels: { kind: lock.kind }, value: lock.up ? 1 : 0 }]),
      gauge('pier_lock_session_locks_held', 'Reconcile locks this server holds now', [{ value: lock.held }]),
      counter('pier_lock_session_losses_total', 'Times the lock session was lost, with every lock on it', [{ value: lock.losses }]),
    ];
  }

  /** Deployments of the org's apps by state: finished ones only grow (a counter). */
  async function deployFigures(auth: AuthContext): Promise<MetricFamily[]> {
    const rows = await db
      .select({ state: deployments.state, n: sql<number>`count(*)::int` })
      .from(deployments)
      .innerJoin(apps, eq(apps.id, deployments.appId))
      .where(and(eq(apps.orgId, auth.orgId), auth.appId ? eq(apps.id, auth.appId) : undefined))
      .groupBy(deployments.state);
    const by = new Map(rows.map((r) => [r.state, Number(r.n)]));
    const states = ['running', 'succeeded', 'failed', 'cancelled', 'superseded'] as const;
    return [counter('pier_deployments_total', "Deployments of this org's apps, by state (running ones included)", states.map((state) => ({ labels: { state }, value: by.get(state) ?? 0 })))];
  }

  async function runtimeFigures(): Promise<MetricFamily[]> {
    if (!options.runtime) return [];
    const runtime = options.runtime;
    const up = await Promise.race([
      runtime.ping().then(
        () => 1,
        () => 0,
      ),
      new Promise<number>((resolve) => setTimeout(() => resolve(0), 2000).unref()),
    ]);
    return [gauge('pier_runtime_up', 'The container engine answered a probe during this scrape', [{ value: up }])];
  }

  function crashLooping(): MetricFamily {
    const now = Date.now();
    for (const [key, b] of backoffs) if (b.until < now - 3_600_000) backoffs.delete(key);
    return gauge(
      'pier_process_crash_looping',
      'The process group is held back by crash-loop backoff now (1), or was within the last hour (0)',
      [...backoffs.values()].map((b) => ({ labels: { app: b.app, process: b.process }, value: b.until > now ? 1 : 0 })),
    );
  }

  /** The standard process figures Prometheus users alert on (descriptors as a share of the limit). */
  function processFigures(): MetricFamily[] {
    const open = countProcFds();
    const max = readSoftLimit();
    return [
      ...(open === null ? [] : [gauge('process_open_fds', 'Open file descriptors of this process', [{ value: open }])]),
      ...(max === null ? [] : [gauge('process_max_fds', 'Soft limit of open file descriptors of this process', [{ value: max }])]),
    ];
  }

  async function edgeFigures(auth: AuthContext): Promise<MetricFamily[]> {
    const seen = await readEdges(db);
    const mine = await db
      .select({ id: endpoints.id, port: endpoints.port, revision: endpoints.revision, app: apps.name })
      .from(endpoints)
      .innerJoin(apps, eq(apps.id, endpoints.appId))
      .where(and(eq(apps.orgId, auth.orgId), auth.appId ? eq(apps.id, auth.appId) : undefined, ne(endpoints.access, 'private')));
    const byId = new Map(mine.map((e) => [e.id, e]));
    const edgeLabels = (e: (typeof seen)[number]) => ({ edge: e.name, edge_id: e.id });
    const tally: Record<ServedState, number> = { served: 0, failed: 0, pending: 0, 'no-edge': 0 };
    for (const e of mine) {
      const state = servedState(e, seen).state;
      if (state !== 'private') tally[state]++;
    }

    const per: Record<'serving' | 'active' | 'total' | 'bytesIn' | 'bytesOut' | 'errors', { labels: Record<string, string>; value: number }[]> = {
      serving: [],
      active: [],
      total: [],
      bytesIn: [],
      bytesOut: [],
      errors: [],
    };
    for (const edge of seen.filter((e) => e.live)) {
      for (const r of edge.report.endpoints) {
        const ep = byId.get(r.id);
        if (!ep) continue;
        const labels = { ...edgeLabels(edge), endpoint: `${ep.app}/${ep.port}`, endpoint_id: ep.id, app: ep.app };
        per.serving.push({ labels, value: r.state === 'serving' ? 1 : 0 });
        per.active.push({ labels, value: r.active });
        per.total.push({ labels, value: r.total });
        per.bytesIn.push({ labels: { ...labels, direction: 'in' }, value: r.bytesIn });
        per.bytesOut.push({ labels: { ...labels, direction: 'out' }, value: r.bytesOut });
        per.errors.push({ labels, value: r.connectErrors });
      }
    }
    return [
      gauge('pier_edges_live', 'Edges that reported within the last 30 s', [{ value: seen.filter((e) => e.live).length }]),
      ...(options.snapshotVersion
        ? [
            gauge('pier_snapshot_version', "This API's current edge snapshot version", [{ value: options.snapshotVersion() }]),
            gauge('pier_edge_current', "Whether the edge serves this API's current snapshot version (1), or an older one (0)", seen.map((e) => ({ labels: edgeLabels(e), value: e.report.applied === options.snapshotVersion?.() ? 1 : 0 }))),
          ]
        : []),
      gauge('pier_edge_live', 'Whether the edge reported within the last 30 s', seen.map((e) => ({ labels: edgeLabels(e), value: e.live ? 1 : 0 }))),
      gauge('pier_edge_applied_version', 'The snapshot version every worker of the edge serves (0 before any)', seen.map((e) => ({ labels: edgeLabels(e), value: e.report.applied ?? 0 }))),
      gauge('pier_edge_report_age_seconds', "Seconds since the edge's last report", seen.map((e) => ({ labels: edgeLabels(e), value: e.ageMs / 1000 }))),
      gauge('pier_edge_workers', 'Worker processes of the edge', seen.map((e) => ({ labels: edgeLabels(e), value: e.report.edge.workers }))),
      gauge('pier_edge_endpoints_failed', 'Endpoints the edge cannot serve (a listener failed to bind)', seen.map((e) => ({ labels: edgeLabels(e), value: e.report.endpoints.filter((x) => x.state === 'failed').length }))),
      gauge('pier_endpoints', "This org's endpoints by what the live edges report: served, failed, pending, no-edge", Object.entries(tally).map(([state, value]) => ({ labels: { state }, value }))),
      gauge('pier_edge_endpoint_serving', 'Every listener of the endpoint is bound on the edge (1), or one failed (0)', per.serving),
      gauge('pier_edge_endpoint_connections_active', 'Client connections open on the endpoint, per edge', per.active),
      counter('pier_edge_endpoint_connections_total', 'Client connections accepted on the endpoint, per edge, since the edge started', per.total),
      counter('pier_edge_endpoint_bytes_total', 'Bytes relayed, per edge: in from clients, out to them', [...per.bytesIn, ...per.bytesOut]),
      counter('pier_edge_endpoint_connect_errors_total', 'Failed connects to backends of the endpoint, per edge', per.errors),
    ];
  }

  return {
    recordPass(seconds, outcome) {
      passes.inc();
      if (outcome !== 'ok') failed.inc({ reason: outcome === 'lock-lost' ? 'lock_lost' : 'error' });
      duration.observe({}, seconds);
    },
    recordCrashLoop(app, process, until) {
      crashLoops.inc({ app, process });
      backoffs.set(`${app}/${process}`, { app, process, until: until.getTime() });
    },
    async families(auth) {
      // Edge and deploy figures need the database: without it the rest still answers (pier_db_up says why).
      const [s, d, e, deploys, engine] = await Promise.all([scheduler(), database(), edgeFigures(auth).catch(() => []), deployFigures(auth).catch(() => []), runtimeFigures()]);
      return [...s, ...d, ...e, ...deploys, ...engine, crashLoops.family(), crashLooping(), ...processFigures()];
    },
  };
}
