// Graceful stop of one edge: close every listener, let established connections finish up to a
// deadline, then close what is left.

import { setTimeout as delay } from 'node:timers/promises';
import type { Edge } from './edge.js';

/** The version that empties the edge at stop; nothing can be newer, so nothing is applied after it. */
const STOP_VERSION = Number.MAX_SAFE_INTEGER;

export async function drainEdge(edge: Edge, timeoutMs: number): Promise<void> {
  if (edge.status().version !== null) {
    // An empty snapshot closes the listeners and drains every backend (the edge's own drain
    // deadline destroys stragglers); this edge has no state file, so nothing is persisted.
    await edge.apply({ version: STOP_VERSION, endpoints: [] });
    const deadline = Date.now() + timeoutMs;
    // Bounded by the deadline: polls every 50 ms.
    while (Date.now() < deadline && edge.status().backends.some((b) => b.active > 0)) await delay(50);
  }
  await edge.close();
}
