// Waits until every live edge reports it serves an ACME challenge, whichever API server feeds it:
// each edge reports the tokens of the challenges in the snapshot it applied (`acmeTokens`,
// proxy/edge-report.ts), after each apply (proxy/edge-reporter.ts), so this is usually a feed round
// trip. Bounded: after `timeoutMs` it answers which edges had not confirmed, and the caller goes on
// (a dead edge must not block an order forever).
//
// Why tokens and not snapshot versions: a version is a time on the clock of the API server that
// built it (api/edge-feed.ts), so "version >= the time the challenge was stored" is no proof the
// edge has it: a server whose clock runs ahead, or whose counter ran past its clock after a clock
// step, publishes versions above that time from reads made before the challenge existed; a server
// whose key vault cannot open the challenge sends snapshots without it at any version; and only the
// newest challenge per app and name is sent. An edge older than the tokens (its report has none)
// is still judged by version, `since`, as before, and named in `byVersion` so the order says so.
import type { Db } from '../../db/database.js';
import { readEdges } from '../served-state.js';

export interface EdgesApplied {
  /** Every live edge confirmed (true also when no edge is live: there is none to wait for). */
  confirmed: boolean;
  /** Names of the live edges that had not confirmed when the wait ended. */
  waiting: string[];
  /** How many live edges there were at the end. */
  live: number;
  /** Live edges that report no challenge tokens (older than this server), judged by snapshot version. */
  byVersion: string[];
}

export interface AwaitedChallenge {
  /** The CA's token of the challenge. */
  token: string;
  /** When it was stored (ms): the snapshot version an edge without token reports must reach. */
  since: number;
}

export async function waitForEdgesApplied(db: Db, challenge: AwaitedChallenge, options: { timeoutMs: number; intervalMs?: number }): Promise<EdgesApplied> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const live = (await readEdges(db)).filter((e) => e.live);
    const byVersion = live.filter((e) => !Array.isArray(e.report.acmeTokens)).map((e) => e.name);
    const waiting = live
      .filter((e) => (Array.isArray(e.report.acmeTokens) ? !e.report.acmeTokens.includes(challenge.token) : (e.report.applied ?? 0) < challenge.since))
      .map((e) => e.name);
    if (waiting.length === 0) return { confirmed: true, waiting, live: live.length, byVersion };
    if (Date.now() >= deadline) return { confirmed: false, waiting, live: live.length, byVersion };
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs ?? 100, Math.max(1, deadline - Date.now()))).unref());
  }
}
