// The second half of /healthz: not "is the API up" but "is what is desired served" — every
// endpoint served by every live edge (api/served-state.ts). Counted at most once per `ttlMs`, and
// concurrent callers share one count, so frequent health checks cost the database next to nothing.
import { ne } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { endpoints } from '../db/schema/index.js';
import { readEdges, servedState, type ServedState } from './served-state.js';

export interface ServingReport {
  /**
   * serving: every endpoint is served by every live edge (or there is none to serve);
   * not-serving: some endpoint is failed or pending; no-edge: endpoints exist and no edge is live;
   * unknown: the count itself failed (the database is down).
   */
  status: 'serving' | 'not-serving' | 'no-edge' | 'unknown';
  edges: { live: number; known: number };
  endpoints: Record<ServedState, number> & { desired: number };
  error?: string;
}

export interface ServingHealth {
  check(): Promise<ServingReport>;
}

export function createServingHealth(options: { db: Db; ttlMs?: number; now?: () => number }): ServingHealth {
  const ttlMs = options.ttlMs ?? 2_000;
  const now = options.now ?? Date.now;
  let last: { at: number; report: ServingReport } | null = null;
  let pending: Promise<ServingReport> | null = null;

  async function count(): Promise<ServingReport> {
    // Private endpoints are bound by no edge on purpose: they are not part of what should be served.
    const rows = await options.db.select({ id: endpoints.id, revision: endpoints.revision }).from(endpoints).where(ne(endpoints.access, 'private'));
    const seen = await readEdges(options.db);
    const tally: Record<ServedState, number> = { served: 0, failed: 0, pending: 0, 'no-edge': 0 };
    for (const row of rows) {
      const state = servedState(row, seen).state;
      if (state !== 'private') tally[state]++;
    }
    const live = seen.filter((e) => e.live).length;
    const status = rows.length === 0 || tally.served === rows.length ? 'serving' : live === 0 ? 'no-edge' : 'not-serving';
    return { status, edges: { live, known: seen.length }, endpoints: { desired: rows.length, ...tally } };
  }

  return {
    check() {
      if (last && now() - last.at < ttlMs) return Promise.resolve(last.report);
      pending ??= count()
        .catch((err: unknown): ServingReport => ({
          status: 'unknown',
          edges: { live: 0, known: 0 },
          endpoints: { desired: 0, served: 0, failed: 0, pending: 0, 'no-edge': 0 },
          error: err instanceof Error ? err.message : String(err),
        }))
        .then((report) => {
          last = { at: now(), report };
          pending = null;
          return report;
        });
      return pending;
    },
  };
}
