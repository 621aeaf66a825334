// What is actually served, from the edges' latest reports: an endpoint is `served` when every live
// edge reports it serving at the endpoint row's revision, `failed` when a live edge reports it
// failed at that revision (with the edge's bind error), `pending` while a live edge has not
// reported that revision yet, and `no-edge` when no edge is live. An edge is live while it
// reported within three heartbeats. Pure, but for readEdges().
import { sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { edges } from '../db/schema/index.js';
import type { EdgeReportBody } from './edge-report-schema.js';

/** How often edges report when nothing changes (the API tells them so in its answer). */
export const EDGE_HEARTBEAT_MS = 10_000;
/** An edge whose last report is older than this is not live. */
export const EDGE_LIVE_MS = 3 * EDGE_HEARTBEAT_MS;

export interface SeenEdge {
  id: string;
  name: string;
  /** Milliseconds since its last report, by the database's clock. */
  ageMs: number;
  live: boolean;
  report: EdgeReportBody;
}

export type ServedState = 'served' | 'failed' | 'pending' | 'no-edge';

export interface ListenerFailure {
  address: string;
  port: number;
  code: string;
  message: string;
  /** When the edge tries the bind again (ISO), if it said. */
  retryAt: string | null;
}

export interface EdgeServing {
  edge: string;
  name: string;
  state: 'serving' | 'failed' | 'pending';
  /** The revision the edge reported it at (null: not at all). */
  revision: number | null;
  failures: ListenerFailure[];
}

export interface Served {
  /** `private`: bound by no edge on purpose (access = "private"); counted in no serving tally. */
  state: ServedState | 'private';
  /** Why it is not served, naming the edge, address:port and error; null when served. */
  reason: string | null;
  /** What to do about it; null when served. */
  hint: string | null;
  edges: EdgeServing[];
}

/** Every edge that ever reported, with whether it is live now. */
export async function readEdges(db: Db): Promise<SeenEdge[]> {
  const rows = await db
    .select({ id: edges.id, name: edges.name, report: edges.report, ageMs: sql<number>`(extract(epoch from (now() - ${edges.lastSeenAt})) * 1000)::float8` })
    .from(edges);
  return rows.map((r) => ({ id: r.id, name: r.name, ageMs: Math.max(0, Number(r.ageMs)), live: Number(r.ageMs) <= EDGE_LIVE_MS, report: r.report as unknown as EdgeReportBody }));
}

/** The served state of one endpoint row over the edges that reported (live ones decide). */
export function servedState(row: { id: string; revision: number; access?: string }, seen: readonly SeenEdge[]): Served {
  if (row.access === 'private') {
    return { state: 'private', reason: 'a private endpoint: no edge binds it on any address', hint: 'reach it with `pier port-forward` or `pier connect`', edges: [] };
  }
  const live = seen.filter((e) => e.live);
  if (live.length === 0) {
    const reason = seen.length === 0 ? 'no edge has reported to this API yet' : `no edge has reported in the last ${EDGE_LIVE_MS / 1000} s (last: ${lastSeen(seen)})`;
    return { state: 'no-edge', reason, hint: 'start an edge that follows this API (`pier server` runs one; else `pier edge --api URL`)', edges: [] };
  }
  const per = live.map((e) => edgeServing(row, e));
  const failed = per.filter((p) => p.state === 'failed');
  if (failed.length) {
    const reason = failed.map((p) => `edge "${p.name}": ${p.failures.map((f) => f.message).join('; ')}`).join('; ');
    const codes = new Set(failed.flatMap((p) => p.failures.map((f) => f.code)));
    return { state: 'failed', reason, hint: bindHint(codes), edges: per };
  }
  const pending = per.filter((p) => p.state === 'pending');
  if (pending.length) {
    const reason = pending.map((p) => `edge "${p.name}" has not reported revision ${row.revision} yet${waitingFor(live.find((e) => e.id === p.edge))}`).join('; ');
    return { state: 'pending', reason, hint: 'wait a moment; if it lasts, `pier edges` shows what each edge applied and its last error', edges: per };
  }
  return { state: 'served', reason: null, hint: null, edges: per };
}

function edgeServing(row: { id: string; revision: number }, edge: SeenEdge): EdgeServing {
  const reported = edge.report.endpoints.find((e) => e.id === row.id);
  const base = { edge: edge.id, name: edge.name, revision: reported?.revision ?? null };
  if (!reported || reported.revision !== row.revision) return { ...base, state: 'pending', failures: [] };
  if (reported.state === 'serving') return { ...base, state: 'serving', failures: [] };
  const failures = reported.listeners
    .filter((l) => l.state === 'failed')
    .map((l) => ({
      address: l.address,
      port: l.port,
      code: l.error?.code ?? 'EUNKNOWN',
      message: l.error?.message ?? `cannot listen on ${l.address}:${l.port}`,
      retryAt: l.retryAt ?? null,
    }));
  return { ...base, state: 'failed', failures };
}

/**
 * What to do about a listener that cannot bind, by its error code. `retrying`: the endpoint stays
 * in the snapshot, so the edge keeps trying; a failed rollout takes it out again instead.
 */
export function bindHint(codes: Set<string>, retrying = true): string {
  if (codes.has('EADDRINUSE')) {
    const then = retrying ? 'the edge retries the bind meanwhile' : 'then deploy again';
    return `another program holds the port on that host: stop it, or deploy the endpoint on another port; ${then}`;
  }
  if (codes.has('EACCES')) return 'the edge may not bind that port (below 1024 needs CAP_NET_BIND_SERVICE): grant it, or choose a port from 1024 up';
  if (codes.has('EADDRNOTAVAIL')) return "the address is not one of the edge host's: add it to the host, or change the edge's --ipv4/--ipv6";
  return retrying ? "see the edge's log; the edge retries the bind meanwhile" : "see the edge's log";
}

function waitingFor(edge: SeenEdge | undefined): string {
  if (!edge) return '';
  const parts = [`it serves snapshot ${edge.report.applied ?? 'none'}`];
  if (edge.report.lastError) parts.push(`its last error: ${edge.report.lastError}`);
  return ` (${parts.join('; ')})`;
}

function lastSeen(seen: readonly SeenEdge[]): string {
  const newest = [...seen].sort((a, b) => a.ageMs - b.ageMs)[0];
  return newest ? `edge "${newest.name}" ${Math.round(newest.ageMs / 1000)} s ago` : 'never';
}
