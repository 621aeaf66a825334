// Waits until every live edge reports it applied a snapshot built after a given time (snapshot
// versions are the time their build started reading the database: api/edge-feed.ts), e.g. one
// that carries a new ACME challenge, whichever API server feeds it. Edges report after each apply
// (proxy/edge-reporter.ts), so this is usually a feed round trip. Bounded: after `timeoutMs` it
// answers which edges had not confirmed, and the caller goes on (a dead edge must not block an
// order forever). Like the address unbinder (api/ip-unbinder.ts), it compares the API servers'
// clocks with each other: they should agree to well under a second.
import type { Db } from '../../db/database.js';
import { readEdges } from '../served-state.js';

export interface EdgesApplied {
  /** Every live edge confirmed (true also when no edge is live: there is none to wait for). */
  confirmed: boolean;
  /** Names of the live edges that had not confirmed when the wait ended. */
  waiting: string[];
  /** How many live edges there were at the end. */
  live: number;
}

export async function waitForEdgesApplied(db: Db, since: number, options: { timeoutMs: number; intervalMs?: number }): Promise<EdgesApplied> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const live = (await readEdges(db)).filter((e) => e.live);
    const waiting = live.filter((e) => (e.report.applied ?? 0) < since).map((e) => e.name);
    if (waiting.length === 0) return { confirmed: true, waiting, live: live.length };
    if (Date.now() >= deadline) return { confirmed: false, waiting, live: live.length };
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs ?? 100, Math.max(1, deadline - Date.now()))).unref());
  }
}
