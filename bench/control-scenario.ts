// One run of the control-plane benchmark on one database: `pier server`'s wiring in this process
// on the in-memory runtime (real HTTP API, scheduler, health monitor, edge feed), an edge feed
// subscriber and API clients in worker threads. Deploys N apps x 2 instances, 50 at a time; waits
// for steady state; measures resync passes, API latency under load, the snapshot's size, and the
// time from a one-app change to the subscriber holding it.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { pino } from 'pino';
import { loadConfig } from '../api/config.js';
import { createMemoryRuntime } from '../api/runtime/memory-runtime.js';
import { startServer } from '../api/server.js';
import { now, type WorkerMessage, type WorkerTask } from './control-worker.js';

export interface ScenarioOptions {
  database: 'pglite' | 'postgres';
  /** For postgres: a URL of an empty database. */
  databaseUrl?: string;
  apps: number;
  batch: number;
  changes: number;
  clients: number;
  loadSeconds: number;
  startLatencyMs: number;
}

export interface Percentiles {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export type Load = Percentiles & { rps: number; errors: number };

export interface ScenarioResult {
  database: string;
  apps: number;
  deploy: { seconds: number; appsPerSecond: number; failed: number; httpErrors: number };
  resync: { cpuMs: Percentiles; wallMs: Percentiles; enqueued: number; blind: { cpuMs: number; wallMs: number; apps: number } };
  api: { status: Load; list: Load; single: { status: Load; list: Load } };
  snapshot: { bytes: number; endpoints: number; buildMs: Percentiles; quietPassMs: Percentiles };
  change: { toSubscriberMs: Percentiles; apiMs: Percentiles; missed: number };
  rssMb: number;
}

const IMAGE = 'pier-test/busybox:1';
const WORKER = new URL('./control-worker.js', import.meta.url);

function manifest(app: string, port: number): string {
  return [
    `app = "${app}"`,
    `image = "${IMAGE}"`,
    '[processes.web]',
    'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]',
    'count = 2',
    '[[endpoints]]',
    'process = "web"',
    `port = ${port}`,
    'target = 8080',
    '[deploy]',
    'drain = "0s"',
  ].join('\n');
}

export function percentiles(values: number[]): Percentiles {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  return { n: s.length, p50: round(at(0.5)), p99: round(at(0.99)), max: round(s.at(-1) ?? NaN) };
}

const round = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runScenario(o: ScenarioOptions, progress: (line: string) => void): Promise<ScenarioResult> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-bench-control-'));
  const config = loadConfig(
    { PIER_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), PIER_API_LISTEN: '127.0.0.1:0', PIER_REGISTRY: 'off', ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl } : {}) },
    { role: 'api' },
  );
  const runtime = createMemoryRuntime({ images: [IMAGE], startLatencyMs: o.startLatencyMs });
  const server = await startServer(config, pino({ level: 'warn' }), { runtime });
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  const { scheduler, edgeFeed } = server.internals;
  const workers: Worker[] = [];
  try {
    const api = (path: string, init: { method?: string; body?: unknown } = {}) =>
      fetch(`${server.apiUrl}${path}`, {
        method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
        headers: { authorization: `Bearer ${token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });

    // The edge subscriber, from the start: it sees every snapshot the deploys make.
    const snapshots: Extract<WorkerMessage, { type: 'snapshot' }>[] = [];
    const waiters = new Set<() => void>();
    const feedWorker = new Worker(WORKER, { workerData: { kind: 'feed', apiUrl: server.apiUrl, token } satisfies WorkerTask });
    workers.push(feedWorker);
    feedWorker.on('message', (m: WorkerMessage) => {
      if (m.type !== 'snapshot') return;
      if (m.invalid) progress(`subscriber: snapshot ${m.version} is invalid: ${m.invalid}`);
      snapshots.push(m);
      if (snapshots.length > 50) snapshots.splice(0, snapshots.length - 50);
      for (const w of waiters) w();
    });
    const seen = (check: (m: Extract<WorkerMessage, { type: 'snapshot' }>) => boolean, timeoutMs: number) =>
      new Promise<Extract<WorkerMessage, { type: 'snapshot' }> | null>((resolve) => {
        const look = () => {
          const hit = snapshots.find(check);
          if (hit) done(hit);
        };
        const timer = setTimeout(() => done(null), timeoutMs);
        const done = (m: Extract<WorkerMessage, { type: 'snapshot' }> | null) => {
          clearTimeout(timer);
          waiters.delete(look);
          resolve(m);
        };
        waiters.add(look);
        look();
      });

    // 1. Deploy, `batch` at a time; an app counts when its rollout has succeeded.
    progress(`${o.database}: deploying ${o.apps} apps, ${o.batch} at a time`);
    let next = 0;
    let failed = 0;
    let httpErrors = 0;
    const t0 = performance.now();
    const deployOne = async (i: number) => {
      const res = await api('/v1/deploys', { body: { manifest: manifest(`app${i}`, 20000 + i) } });
      if (res.status !== 201) {
        httpErrors++;
        progress(`deploy app${i}: ${res.status} ${await res.text()}`);
        return;
      }
      const { deployment } = (await res.json()) as { deployment: { id: string } };
      for (;;) {
        await sleep(50);
        const d = (await (await api(`/v1/deployments/${deployment.id}`)).json()) as { state: string };
        if (d.state === 'succeeded') return;
        if (d.state !== 'running') {
          failed++;
          return;
        }
      }
    };
    await Promise.all(
      Array.from({ length: o.batch }, async () => {
        while (next < o.apps) {
          const i = next++;
          await deployOne(i);
          if ((i + 1) % 100 === 0) progress(`  ${i + 1} deployed, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }
      }),
    );
    const deploySeconds = (performance.now() - t0) / 1000;

    // 2. Steady state: nothing left to do, and the subscriber holds every app's two backends.
    await scheduler.idle();
    for (let i = 0; i < 100 && (await scheduler.resync()).enqueued.size > 0; i++) {
      await scheduler.idle();
      await sleep(100);
    }
    const full = await seen((m) => Object.keys(m.backends).length === o.apps && Object.values(m.backends).every((n) => n === 2), 60_000);
    if (!full) progress('subscriber: never saw every app with two backends');

    const cpu: number[] = [];
    const wall: number[] = [];
    let enqueued = 0;
    for (let i = 0; i < 7; i++) {
      await sleep(200);
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      enqueued += (await scheduler.resync()).enqueued.size;
      const c = process.cpuUsage(c0);
      wall.push(performance.now() - w0);
      cpu.push((c.user + c.system) / 1000);
    }
    // The reference: the resync of before, a pass of every app, until the queue is idle.
    await sleep(200);
    const b0 = process.cpuUsage();
    const bw = performance.now();
    const blindApps = await scheduler.resyncEverything();
    await scheduler.idle();
    const bc = process.cpuUsage(b0);
    const blind = { cpuMs: round((bc.user + bc.system) / 1000), wallMs: round(performance.now() - bw), apps: blindApps };

    // 3. API latency under `clients` concurrent clients, each route on its own.
    const loadRun = async (paths: string[], clients = o.clients) => {
      const w = new Worker(WORKER, { workerData: { kind: 'load', apiUrl: server.apiUrl, token, paths, clients, seconds: o.loadSeconds } satisfies WorkerTask });
      workers.push(w);
      const m = await new Promise<Extract<WorkerMessage, { type: 'latencies' }>>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      return { ...percentiles(m.ms), rps: round(m.ms.length / o.loadSeconds), errors: m.errors };
    };
    const names = Array.from({ length: o.apps }, (_, i) => `/v1/apps/app${(i * 7919) % o.apps}`);
    progress(`${o.database}: API load, ${o.clients} clients x ${o.loadSeconds} s per route`);
    const status = await loadRun(names);
    const list = await loadRun(['/v1/apps']);
    // One client: the time a request takes on its own (what 20 clients queue behind).
    const single = { status: await loadRun(names, 1), list: await loadRun(['/v1/apps'], 1) };

    // 4. The snapshot as the edge gets it, and what one build of it costs (nothing changed, so
    // nothing is sent); and what a pass of one app that needs nothing costs, lock to release.
    const snap = edgeFeed.current();
    const builds: number[] = [];
    for (let i = 0; i < 20; i++) {
      const b0 = performance.now();
      await edgeFeed.rebuild();
      builds.push(performance.now() - b0);
    }
    const passes: number[] = [];
    const { apps: some } = (await (await api('/v1/apps?limit=20')).json()) as { apps: { id: string }[] };
    for (const app of some) {
      const p0 = performance.now();
      scheduler.enqueue(app.id);
      await scheduler.idle();
      passes.push(performance.now() - p0);
    }
    const snapshot = { bytes: JSON.stringify(snap).length, endpoints: snap.endpoints.length, buildMs: percentiles(builds), quietPassMs: percentiles(passes) };

    // 5. One app changed at a time: an app scaled 2 -> 3 (a backend added), then back (one
    // removed), each timed from the request to the subscriber holding it.
    progress(`${o.database}: ${o.changes} one-app changes`);
    const toSubscriber: number[] = [];
    const apiMs: number[] = [];
    let missed = 0;
    for (let i = 0; i < o.changes; i++) {
      const app = `app${(Math.floor(i / 2) * 104729) % o.apps}`;
      const want = i % 2 === 0 ? 3 : 2;
      const sent = now();
      const res = await api(`/v1/apps/${app}/scale`, { body: { counts: { web: want } } });
      apiMs.push(now() - sent);
      const got = res.ok ? await seen((m) => m.at >= sent && m.backends[app] === want, 10_000) : null;
      if (got) toSubscriber.push(got.at - sent);
      else missed++;
    }

    return {
      database: o.database,
      apps: o.apps,
      deploy: { seconds: round(deploySeconds), appsPerSecond: round(o.apps / deploySeconds), failed, httpErrors },
      resync: { cpuMs: percentiles(cpu), wallMs: percentiles(wall), enqueued, blind },
      api: { status, list, single },
      snapshot,
      change: { toSubscriberMs: percentiles(toSubscriber), apiMs: percentiles(apiMs), missed },
      rssMb: Math.round(process.memoryUsage().rss / 1e6),
    };
  } finally {
    for (const w of workers) {
      w.postMessage('stop');
      await w.terminate();
    }
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}
