// `npm run bench:control [-- --apps N --db pglite,postgres --json FILE]`: the control plane at
// scale on the in-memory runtime, on the embedded database and on PostgreSQL (DATABASE_URL; a
// scratch database is made and dropped). Prints a Markdown table per run against the targets:
// no error at any size, a resync pass < 1 s CPU, a one-app change at the edge <= 100 ms p99,
// API p99 <= 50 ms. Goals, not assertions: it always prints what it measured.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { runScenario, type ScenarioResult } from './control-scenario.js';

const { values: flags } = parseArgs({
  options: {
    apps: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '50' },
    changes: { type: 'string', default: '100' },
    clients: { type: 'string', default: '20' },
    'load-seconds': { type: 'string', default: '10' },
    'start-latency': { type: 'string', default: '5' },
    db: { type: 'string', default: 'pglite,postgres' },
    json: { type: 'string' },
  },
});

const log = (line: string) => process.stderr.write(`${line}\n`);
const kinds = (flags.db ?? '').split(',').filter(Boolean) as ('pglite' | 'postgres')[];
const results: ScenarioResult[] = [];

for (const kind of kinds) {
  let databaseUrl: string | undefined;
  let drop: (() => Promise<void>) | undefined;
  if (kind === 'postgres') {
    const base = process.env.DATABASE_URL;
    if (!base) {
      log('postgres: skipped, DATABASE_URL is not set (e.g. postgres://pier:pier@127.0.0.1:5432/pier)');
      continue;
    }
    const name = `pier_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
    const admin = postgres(base, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${name}`);
    drop = async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 5 });
    };
    const url = new URL(base);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
  }
  try {
    const result = await runScenario(
      {
        database: kind,
        databaseUrl,
        apps: Number(flags.apps),
        batch: Number(flags.batch),
        changes: Number(flags.changes),
        clients: Number(flags.clients),
        loadSeconds: Number(flags['load-seconds']),
        startLatencyMs: Number(flags['start-latency']),
      },
      log,
    );
    results.push(result);
    process.stdout.write(`${table(result)}\n`);
  } finally {
    await drop?.();
  }
}

if (flags.json) await writeFile(flags.json, `${JSON.stringify({ machine: { cpus: cpus().length, node: process.version }, flags, results }, null, 2)}\n`);

function table(r: ScenarioResult): string {
  const ok = (good: boolean) => (good ? 'met' : '**missed**');
  const lines = [
    `### ${r.database}, ${r.apps} apps x 2 instances, one endpoint each`,
    '',
    '| measure | value | target |',
    '|---|---|---|',
    `| deploy, ${flags.batch} at a time | ${r.deploy.appsPerSecond} apps/s (${r.deploy.seconds} s); ${r.deploy.failed} failed, ${r.deploy.httpErrors} HTTP errors | no error: ${ok(r.deploy.failed + r.deploy.httpErrors === 0)} |`,
    `| resync pass, CPU (p50 / max of ${r.resync.cpuMs.n}) | ${r.resync.cpuMs.p50} / ${r.resync.cpuMs.max} ms; enqueued ${r.resync.enqueued} apps | < 1000 ms: ${ok(r.resync.cpuMs.max < 1000)} |`,
    `| resync pass, wall (p50 / max) | ${r.resync.wallMs.p50} / ${r.resync.wallMs.max} ms | |`,
    `| reference: a pass of every app (the old resync), until idle | ${r.resync.blind.cpuMs} ms CPU, ${r.resync.blind.wallMs} ms wall, ${r.resync.blind.apps} apps; ratio ${(r.resync.blind.cpuMs / Math.max(r.resync.cpuMs.p50, 0.01)).toFixed(0)}x | |`,
    `| GET /v1/apps/:app, ${flags.clients} clients (p50 / p99 / max) | ${r.api.status.p50} / ${r.api.status.p99} / ${r.api.status.max} ms, ${r.api.status.rps} req/s, ${r.api.status.errors} errors | p99 <= 50 ms: ${ok(r.api.status.p99 <= 50)} |`,
    `| GET /v1/apps (first 100), ${flags.clients} clients (p50 / p99 / max) | ${r.api.list.p50} / ${r.api.list.p99} / ${r.api.list.max} ms, ${r.api.list.rps} req/s, ${r.api.list.errors} errors | p99 <= 50 ms: ${ok(r.api.list.p99 <= 50)} |`,
    `| the same, 1 client (p50 / p99): status / list | ${r.api.single.status.p50} / ${r.api.single.status.p99} ms, ${r.api.single.status.rps} req/s / ${r.api.single.list.p50} / ${r.api.single.list.p99} ms, ${r.api.single.list.rps} req/s | |`,
    `| edge snapshot | ${(r.snapshot.bytes / 1024).toFixed(0)} KiB, ${r.snapshot.endpoints} endpoints | |`,
    `| one snapshot build from the database (p50 / p99) | ${r.snapshot.buildMs.p50} / ${r.snapshot.buildMs.p99} ms | |`,
    `| one reconcile pass of an app that needs nothing (p50 / p99) | ${r.snapshot.quietPassMs.p50} / ${r.snapshot.quietPassMs.p99} ms | |`,
    `| one-app change (scale) to the subscriber (p50 / p99 / max of ${r.change.toSubscriberMs.n}) | ${r.change.toSubscriberMs.p50} / ${r.change.toSubscriberMs.p99} / ${r.change.toSubscriberMs.max} ms; ${r.change.missed} missed | p99 <= 100 ms: ${ok(r.change.toSubscriberMs.p99 <= 100 && r.change.missed === 0)} |`,
    `| of which the scale request (p50 / p99) | ${r.change.apiMs.p50} / ${r.change.apiMs.p99} ms | |`,
    `| server process RSS at the end | ${r.rssMb} MB | |`,
  ];
  return lines.join('\n');
}
