// The control-plane benchmark's other side, in a worker thread (its own event loop, as another
// process would have): an edge feed subscriber that follows the watch stream as `pier edge --api`
// does and reports, per snapshot, when it was parsed and validated and how many backends each
// app has; and HTTP clients that load the API and report latencies.
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { followApiFeed } from '../proxy/api-feed.js';
import { validateEdgeConfig } from '../proxy/validate-edge-config.js';
import type { EdgeConfig } from '../proxy/edge-config.js';

export type WorkerTask =
  | { kind: 'feed'; apiUrl: string; token: string }
  | { kind: 'load'; apiUrl: string; token: string; paths: string[]; clients: number; seconds: number };

export type WorkerMessage =
  | { type: 'snapshot'; at: number; version: number; bytes: number; backends: Record<string, number>; invalid: string | null }
  | { type: 'latencies'; ms: number[]; errors: number; statuses: Record<string, number> };

/** Milliseconds on a clock both threads share. */
export const now = (): number => performance.timeOrigin + performance.now();

async function feed(task: Extract<WorkerTask, { kind: 'feed' }>): Promise<void> {
  const abort = new AbortController();
  parentPort?.on('message', (m) => {
    if (m === 'stop') abort.abort();
  });
  await followApiFeed({
    url: task.apiUrl,
    token: task.token,
    log: pino({ level: 'warn' }),
    signal: abort.signal,
    onSnapshot: async (snapshot) => {
      const invalid = validateEdgeConfig(snapshot) ?? null;
      const config = snapshot as EdgeConfig;
      const backends: Record<string, number> = {};
      for (const e of config.endpoints) backends[e.app] = (backends[e.app] ?? 0) + e.backends.length;
      const message: WorkerMessage = { type: 'snapshot', at: now(), version: config.version, bytes: JSON.stringify(snapshot).length, backends, invalid };
      parentPort?.postMessage(message);
    },
  });
}

async function load(task: Extract<WorkerTask, { kind: 'load' }>): Promise<void> {
  const ms: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  const until = now() + task.seconds * 1000;
  let next = 0;
  const client = async () => {
    while (now() < until) {
      const path = task.paths[next++ % task.paths.length] as string;
      const start = now();
      try {
        const res = await fetch(`${task.apiUrl}${path}`, { headers: { authorization: `Bearer ${task.token}` } });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        if (!res.ok) errors++;
      } catch {
        errors++;
      }
      ms.push(now() - start);
    }
  };
  await Promise.all(Array.from({ length: task.clients }, client));
  const message: WorkerMessage = { type: 'latencies', ms, errors, statuses };
  parentPort?.postMessage(message);
}

const task = workerData as WorkerTask | undefined;
if (task?.kind === 'feed') await feed(task);
if (task?.kind === 'load') await load(task);
