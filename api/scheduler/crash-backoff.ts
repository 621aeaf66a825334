// Crash-loop backoff, derived from the instance rows themselves (so it survives restarts):
// after 3 exits of a process within 60 s, wait 2, 4, 8 … up to 60 s before starting it again.
// The pass that sees an exit counts it before it plans (withExitsSeenNow), so the replacement's
// start waits for the delay the crash-loop event announces.
import type { Instance } from '../../db/schema/index.js';
import type { ContainerInfo } from '../runtime/runtime.js';
import { isLive } from './plan.js';

export const WINDOW_MS = 60_000;
export const FREE_EXITS = 3;
export const FIRST_DELAY_MS = 2_000;
export const MAX_DELAY_MS = 60_000;

export interface Backoff {
  until: Date;
  exits: number;
  /** The exit the delay counts from. */
  lastExit: Date;
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
    const delay = Math.min(FIRST_DELAY_MS * 2 ** (times.length - FREE_EXITS), MAX_DELAY_MS);
    out[process] = { until: new Date(last + delay), exits: times.length, lastExit: new Date(last) };
  }
  return out;
}

/**
 * The rows as they read once this pass has recorded the exits it sees: an instance that should
 * run and whose container has stopped (or vanished) counts as exited at the container's finish
 * time. Without it a pass would plan the replacement's start before the exit is counted.
 */
export function withExitsSeenNow(rows: Instance[], containers: Map<string, ContainerInfo>, now: Date): Instance[] {
  return rows.map((r) => {
    // A row without a container yet is a start in progress (its second phase is due), not an exit.
    if (r.desiredState !== 'running' || r.containerId === null) return r;
    const c = containers.get(r.id);
    if (isLive(c?.state ?? null)) return r;
    return { ...r, observedState: 'exited', stoppedAt: c?.finishedAt ?? now };
  });
}

/** The reason recorded when a start is held back. */
export function crashLoopMessage(process: string, count: number, until: Date, now: Date): string {
  const wait = Math.max(0, Math.round((until.getTime() - now.getTime()) / 1000));
  return `crash loop: process ${process} exited ${count} times in 60 s; next start in ${wait} s`;
}
