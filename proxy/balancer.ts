// Least connections with two random choices (power of two choices) over one endpoint's backends:
// O(1) per pick, close to global least-connections, and no herd onto one newly empty backend.
// Ejected backends are skipped unless every candidate is ejected: then they are all tried anyway.

import type { Backend } from './backend.js';

export class Balancer {
  /** The backends of one snapshot; a backend may start draining later, so pick() checks. */
  constructor(readonly backends: readonly Backend[]) {}

  /** A backend for a new connection, skipping draining ones and those in `exclude`; undefined if none. */
  pick(exclude?: readonly Backend[], now = Date.now()): Backend | undefined {
    const list = this.backends;
    if (exclude === undefined || exclude.length === 0) {
      if (list.length === 1) {
        const only = list[0]!;
        return only.draining ? undefined : only;
      }
      if (list.length > 1) {
        const [a, b] = twoDistinct(list);
        if (usable(a, now) && usable(b, now)) return a.active <= b.active ? a : b;
      }
    }
    // Slow path: retries, ejected backends and snapshots caught mid-drain.
    const candidates = list.filter((backend) => !backend.draining && !exclude?.includes(backend));
    const healthy = candidates.filter((backend) => !backend.isEjected(now));
    const pool = healthy.length > 0 ? healthy : candidates;
    if (pool.length <= 1) return pool[0];
    const [a, b] = twoDistinct(pool);
    return a.active <= b.active ? a : b;
  }
}

function usable(backend: Backend, now: number): boolean {
  return !backend.draining && backend.ejectedUntil <= now;
}

function twoDistinct(list: readonly Backend[]): [Backend, Backend] {
  const i = Math.floor(Math.random() * list.length);
  let j = Math.floor(Math.random() * (list.length - 1));
  if (j >= i) j++;
  return [list[i]!, list[j]!];
}
