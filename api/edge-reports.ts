// Takes the edges' reports (POST /v1/edge/report): keeps each edge's latest report in `edges`, and
// turns what changed since its previous one into events of the apps concerned, in one transaction
// (endpoint.bind_failed / endpoint.serving, backend.ejected / backend.restored). Then it wakes the
// reconciles of apps whose served state may have moved, so a rollout waiting on the edge settles
// at once (api/scheduler/rollout.ts).
import type { Logger } from 'pino';
import { eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, deployments, edges, endpoints, type NewEvent } from '../db/schema/index.js';
import { reportChanges, type ReportChanges } from './edge-report-changes.js';
import type { EdgeReportBody, ReportedEndpointBody } from './edge-report-schema.js';
import { bindHint, EDGE_HEARTBEAT_MS, EDGE_LIVE_MS } from './served-state.js';
import type { Transactions } from './transactions.js';

export interface EdgeReportsOptions {
  db: Db;
  transactions: Transactions;
  log: Logger;
  /** Asks for a reconcile of the app (its rollout may settle now). */
  enqueue: (appId: string) => void;
  /** The org system events belong to (edge.connected); none: not recorded. */
  systemOrg?: (() => string | undefined) | undefined;
}

export interface EdgeReports {
  /** Stores the report and records its changes; answers the heartbeat the edge should keep. */
  record(report: EdgeReportBody): Promise<{ heartbeatMs: number }>;
}

interface EndpointOwner {
  id: string;
  port: number;
  appId: string;
  orgId: string;
  appName: string;
}

export function createEdgeReports(options: EdgeReportsOptions): EdgeReports {
  const { db, transactions } = options;
  const log = options.log.child({ component: 'edge-reports' });

  return {
    async record(report) {
      const { changes, wasLive } = await transactions.run(async (t) => {
        const prev = await lockEdge(t.tx, report);
        const changes = reportChanges(prev?.report ?? null, report);
        await t.tx
          .update(edges)
          .set({
            name: report.edge.name,
            version: report.edge.version,
            pid: report.edge.pid,
            workers: report.edge.workers,
            appliedVersion: report.applied,
            lastError: report.lastError,
            report: report as unknown as Record<string, unknown>,
            lastSeenAt: sql`now()`,
            disconnectedAt: null,
          })
          .where(eq(edges.id, report.edge.id));
        const owners = await ownersOf(t.tx, changes);
        for (const event of changeEvents(report, changes, owners)) await t.record(event);
        const orgId = options.systemOrg?.();
        if (orgId && !(prev?.live ?? false)) {
          await t.record({
            orgId,
            appId: null,
            type: 'edge.connected',
            reason: prev ? 'reporting again' : 'first report',
            message: `edge "${report.edge.name}" (${report.edge.version}, pid ${report.edge.pid}) reports${prev ? ' again' : ''}, serving snapshot ${report.applied ?? 'none yet'}`,
            data: { edge: { id: report.edge.id, name: report.edge.name }, appliedVersion: report.applied, version: report.edge.version, pid: report.edge.pid },
          });
        }
        return { changes, wasLive: prev?.live ?? false };
      });
      await wake(changes, wasLive).catch((err: unknown) => log.warn({ err }, 'rollouts not woken after an edge report; the next resync looks again'));
      return { heartbeatMs: EDGE_HEARTBEAT_MS };
    },
  };

  /** The edge's previous report, its row locked so two reports of one edge are taken in turn. */
  async function lockEdge(tx: Db, report: EdgeReportBody): Promise<{ report: EdgeReportBody; live: boolean } | null> {
    const select = () =>
      tx
        .select({ report: edges.report, live: sql<boolean>`${edges.lastSeenAt} > now() - make_interval(secs => ${EDGE_LIVE_MS / 1000})` })
        .from(edges)
        .where(eq(edges.id, report.edge.id))
        .for('update');
    const [row] = await select();
    if (row) return { report: row.report as unknown as EdgeReportBody, live: Boolean(row.live) };
    const [made] = await tx
      .insert(edges)
      .values({ id: report.edge.id, name: report.edge.name, version: report.edge.version, pid: report.edge.pid, workers: report.edge.workers, report: {} })
      .onConflictDoNothing()
      .returning({ id: edges.id });
    if (made) return null;
    // Its first report raced another one, which made the row: take that one's turn.
    const [again] = await select();
    return again ? { report: again.report as unknown as EdgeReportBody, live: Boolean(again.live) } : null;
  }

  async function ownersOf(tx: Db, changes: ReportChanges): Promise<Map<string, EndpointOwner>> {
    const ids = [...new Set([...changes.failed, ...changes.recovered].map((e) => e.id).concat([...changes.ejected, ...changes.restored].map((b) => b.endpoint)))];
    if (ids.length === 0) return new Map();
    const rows = await tx
      .select({ id: endpoints.id, port: endpoints.port, appId: endpoints.appId, orgId: apps.orgId, appName: apps.name })
      .from(endpoints)
      .innerJoin(apps, eq(apps.id, endpoints.appId))
      .where(inArray(endpoints.id, ids));
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** Reconciles of apps whose endpoints moved; all running rollouts when the edge just became live. */
  async function wake(changes: ReportChanges, wasLive: boolean): Promise<void> {
    const appIds = new Set<string>();
    if (changes.moved.length) {
      const rows = await db.select({ appId: endpoints.appId }).from(endpoints).where(inArray(endpoints.id, changes.moved));
      for (const r of rows) appIds.add(r.appId);
    }
    if (!wasLive) {
      const rolling = await db.selectDistinct({ appId: deployments.appId }).from(deployments).where(eq(deployments.state, 'running'));
      for (const r of rolling) appIds.add(r.appId);
    }
    for (const id of appIds) options.enqueue(id);
  }
}

/** The events of one report's changes, for endpoints this database knows. */
function changeEvents(report: EdgeReportBody, changes: ReportChanges, owners: Map<string, EndpointOwner>): NewEvent[] {
  const edge = { id: report.edge.id, name: report.edge.name };
  const out: NewEvent[] = [];
  for (const e of changes.failed) {
    const owner = owners.get(e.id);
    if (!owner) continue;
    const failures = e.listeners.filter((l) => l.state === 'failed');
    const first = failures[0];
    const code = first?.error?.code ?? 'EUNKNOWN';
    const what = failures.map((l) => l.error?.message ?? `cannot listen on ${l.address}:${l.port}`).join('; ');
    out.push({
      orgId: owner.orgId,
      appId: owner.appId,
      type: 'endpoint.bind_failed',
      reason: code,
      message: `edge "${edge.name}" cannot serve :${owner.port}: ${what}; ${bindHint(new Set(failures.map((l) => l.error?.code ?? '')))}`,
      data: {
        edge,
        endpoint: e.id,
        port: owner.port,
        revision: e.revision,
        address: first?.address ?? null,
        listenPort: first?.port ?? owner.port,
        code,
        message: first?.error?.message ?? null,
        listeners: failures.map((l) => ({ address: l.address, port: l.port, code: l.error?.code ?? null, message: l.error?.message ?? null, retryAt: l.retryAt ?? null })),
      },
    });
  }
  for (const e of changes.recovered) {
    const owner = owners.get(e.id);
    if (!owner) continue;
    out.push({
      orgId: owner.orgId,
      appId: owner.appId,
      type: 'endpoint.serving',
      reason: 'bound',
      message: `edge "${edge.name}" serves :${owner.port} again (${listening(e)})`,
      data: { edge, endpoint: e.id, port: owner.port, revision: e.revision },
    });
  }
  for (const [type, list] of [['backend.ejected', changes.ejected], ['backend.restored', changes.restored]] as const) {
    for (const b of list) {
      const owner = owners.get(b.endpoint);
      if (!owner) continue;
      const ejected = type === 'backend.ejected';
      out.push({
        orgId: owner.orgId,
        appId: owner.appId,
        instanceId: b.id,
        type,
        reason: ejected ? 'connect-failed' : 'answering',
        message: ejected
          ? `edge "${edge.name}" stopped sending :${owner.port} connections to ${b.id} after ${b.connectFailures} failed connects${b.lastError ? ` (${b.lastError})` : ''}; the other instances take them until it answers`
          : `edge "${edge.name}" sends :${owner.port} connections to ${b.id} again`,
        data: { edge, endpoint: b.endpoint, port: owner.port, instance: b.id, connectFailures: b.connectFailures, lastError: b.lastError ?? null },
      });
    }
  }
  return out;
}

function listening(e: ReportedEndpointBody): string {
  return e.listeners.map((l) => `${l.address.includes(':') ? `[${l.address}]` : l.address}:${l.port}`).join(' ') || 'no listener';
}
