// Crash-loop backoff, derived from the instance rows themselves (so it survives restarts):
// after 3 exits of a process within 60 s, wait 2, 4, 8 … up to 60 s before starting it again.
import type { Instance } from '../../db/schema/index.js';

const WINDOW_MS = 60_000;
const FREE_EXITS = 3;
const MAX_DELAY_MS = 60_000;

export interface Backoff {
  until: Date;
  exits: number;
}

export function crashBackoff(rows: Instance[], now: Date): Record<string, Backoff> {
  const exits = new Map<string, Date[]>();
  for (const r of rows) {
    if ((r.observedState !== 'exited' && r.observedState !== 'failed') || !r.stoppedAt) continue;
    if (now.getTime() - r.stoppedAt.getTime() > WINDOW_MS) continue;
    exits.set(r.process, [...(exits.get(r.process) ?? []), r.stoppedAt]);
  }
  const out: Record<string, Backoff> = {};
  for (const [process, times] of exits) {
    if (times.length < FREE_EXITS) continue;
    const last = Math.max(...times.map((t) => t.getTime()));
    const delay = Math.min(2_000 * 2 ** (times.length - FREE_EXITS), MAX_DELAY_MS);
    out[process] = { until: new Date(last + delay), exits: times.length };
  }
  return out;
}

/** The reason recorded when a start is held back. */
export function crashLoopMessage(process: string, count: number, until: Date, now: Date): string {
  const wait = Math.max(0, Math.round((until.getTime() - now.getTime()) / 1000));
  return `crash loop: process ${process} exited ${count} times in 60 s; next start in ${wait} s`;
}
