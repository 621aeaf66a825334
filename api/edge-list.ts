// `GET /v1/edges`: every edge that reported to this API, live or not, from its latest report. The
// failures listed are those of endpoints the token may see; an edge serves every org's apps.
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, edges, endpoints } from '../db/schema/index.js';
import type { AuthContext } from './auth.js';
import type { EdgeReportBody } from './edge-report-schema.js';
import { EDGE_LIVE_MS } from './served-state.js';
import type { EdgeFailureView, EdgeView } from './views.js';

export async function listEdges(db: Db, auth: AuthContext, snapshotVersion: number): Promise<EdgeView[]> {
  const rows = await db
    .select({ edge: edges, ageMs: sql<number>`(extract(epoch from (now() - ${edges.lastSeenAt})) * 1000)::float8` })
    .from(edges)
    .orderBy(asc(edges.name), asc(edges.id));
  const reports = rows.map((r) => r.edge.report as unknown as EdgeReportBody);
  const failedIds = [...new Set(reports.flatMap((r) => (r.endpoints ?? []).filter((e) => e.state === 'failed').map((e) => e.id)))];
  const visible = failedIds.length
    ? await db
        .select({ id: endpoints.id, port: endpoints.port, app: apps.name })
        .from(endpoints)
        .innerJoin(apps, eq(apps.id, endpoints.appId))
        .where(and(inArray(endpoints.id, failedIds), eq(apps.orgId, auth.orgId), auth.appId ? eq(apps.id, auth.appId) : undefined))
    : [];
  const named = new Map(visible.map((v) => [v.id, `${v.app}/${v.port}`]));
  return rows.map(({ edge, ageMs }, i) => {
    const report = reports[i] as EdgeReportBody;
    const eps = report.endpoints ?? [];
    const failures: EdgeFailureView[] = eps
      .filter((e) => e.state === 'failed' && named.has(e.id))
      .flatMap((e) =>
        e.listeners
          .filter((l) => l.state === 'failed')
          .map((l) => ({
            endpoint: e.id,
            name: named.get(e.id) as string,
            address: l.address,
            port: l.port,
            code: l.error?.code ?? 'EUNKNOWN',
            message: l.error?.message ?? `cannot listen on ${l.address}:${l.port}`,
            retryAt: l.retryAt ?? null,
          })),
      );
    const age = Math.max(0, Number(ageMs));
    return {
      id: edge.id,
      name: edge.name,
      version: edge.version,
      pid: edge.pid,
      workers: edge.workers,
      io: typeof report.edge?.io === 'string' ? report.edge.io : null,
      live: age <= EDGE_LIVE_MS,
      applied: edge.appliedVersion,
      current: edge.appliedVersion !== null && edge.appliedVersion === snapshotVersion,
      lastReportAgeSeconds: Math.round(age / 100) / 10,
      firstSeenAt: edge.firstSeenAt.toISOString(),
      lastSeenAt: edge.lastSeenAt.toISOString(),
      lastError: edge.lastError,
      endpoints: { total: eps.length, serving: eps.filter((e) => e.state === 'serving').length, failed: eps.filter((e) => e.state === 'failed').length },
      failures,
    };
  });
}
