// GET /metrics in server mode: Prometheus text that parses (our strict reader, promtool, and a real
// Prometheus scraping it with a bearer token from a file, as docs/operations.md configures it),
// carrying the API's, the scheduler's, the lock session's, the database's and the edges' families
// with the figures of the live edges' latest reports. Only org-wide read tokens may read it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EndpointView } from '../../api/views.js';
import { reportBody } from '../support/edge-report-body.js';
import { captureLog } from '../support/log-capture.js';
import { memoryManifest, startMemoryServer } from '../support/memory-server.js';
import { parsePrometheusText } from '../support/prometheus-text-parser.js';
import { freePort } from '../support/tcp-client.js';
import { createTestDbUrl } from '../support/test-db.js';

const FAMILIES = [
  'pier_api_requests_total',
  'pier_api_request_duration_seconds',
  'pier_scheduler_queue',
  'pier_scheduler_reconciles_total',
  'pier_scheduler_reconciles_failed_total',
  'pier_scheduler_reconcile_duration_seconds',
  'pier_lock_session_up',
  'pier_lock_session_locks_held',
  'pier_lock_session_losses_total',
  'pier_db_up',
  'pier_db_probe_seconds',
  'pier_db_pool_max',
  'pier_edges_live',
  'pier_edge_live',
  'pier_edge_applied_version',
  'pier_edge_report_age_seconds',
  'pier_edge_workers',
  'pier_edge_endpoints_failed',
  'pier_endpoints',
  'pier_edge_endpoint_serving',
  'pier_edge_endpoint_connections_active',
  'pier_edge_endpoint_connections_total',
  'pier_edge_endpoint_bytes_total',
  'pier_edge_endpoint_connect_errors_total',
];

test('/metrics is Prometheus text with every family, for org-wide read tokens, and a real Prometheus scrapes it', async (t) => {
  const databaseUrl = await createTestDbUrl(t);
  const s = await startMemoryServer({ databaseUrl, log: captureLog('warn').log }, t);
  const edgeToken = (await readFile(s.server.edgeTokenFile, 'utf8')).trim();
  const res = await s.request('/v1/deploys', { body: { manifest: memoryManifest('metered', 21800, 1) } });
  assert.equal(res.status, 201, await res.text());
  const { endpoints } = (await (await s.request('/v1/apps/metered/endpoints')).json()) as { endpoints: EndpointView[] };
  const ep = endpoints[0] as EndpointView;
  const body = reportBody({ id: 'edge_m', name: 'edge-m' }, [{ id: ep.id, revision: ep.revision, port: 21800, active: 2, total: 17 }], { applied: 1234 });
  const reported = await fetch(`${s.server.apiUrl}/v1/edge/report`, { method: 'POST', headers: { authorization: `Bearer ${edgeToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(reported.status, 200);

  const token = async (extra: Record<string, string>) => ((await (await s.request('/v1/tokens', { body: { scope: 'read', name: 'prometheus', ...extra } })).json()) as { secret: string }).secret;
  const read = await token({});
  const bound = await token({ app: 'metered' });
  const scrape = (secret?: string) => fetch(`${s.server.apiUrl}/metrics`, { headers: secret ? { authorization: `Bearer ${secret}` } : {} });
  assert.equal((await scrape()).status, 401);
  assert.equal((await scrape(bound)).status, 403);
  const ok = await scrape(read);
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await ok.text();

  const families = parsePrometheusText(text);
  for (const name of FAMILIES) assert.ok(families.has(name), `family ${name} is missing:\n${text}`);
  const sample = (name: string, labels: Record<string, string>) =>
    families.get(name.replace(/_(bucket|sum|count)$/, ''))?.samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))?.value;
  assert.ok((sample('pier_api_requests_total', { route: '/v1/deploys', method: 'POST', code: '2xx' }) ?? 0) >= 1);
  assert.ok((sample('pier_api_request_duration_seconds_count', { route: '/v1/apps/:app/endpoints', method: 'GET' }) ?? 0) >= 1);
  assert.equal(sample('pier_edge_applied_version', { edge: 'edge-m' }), 1234);
  assert.equal(sample('pier_edge_live', { edge: 'edge-m' }), 1);
  assert.equal(sample('pier_edge_endpoint_connections_total', { edge: 'edge-m', endpoint: 'metered/21800', endpoint_id: ep.id, app: 'metered' }), 17);
  assert.equal(sample('pier_edge_endpoint_connections_active', { endpoint: 'metered/21800' }), 2);
  assert.equal(sample('pier_edge_endpoint_bytes_total', { endpoint: 'metered/21800', direction: 'in' }), 10);
  assert.equal(sample('pier_endpoints', { state: 'served' }), 1);
  assert.equal(sample('pier_db_up', {}), 1);
  assert.equal(sample('pier_lock_session_up', { kind: databaseUrl ? 'postgres' : 'local' }), 1);
  if (databaseUrl) assert.ok(families.has('pier_db_pool_connections'), 'the pool sessions, on PostgreSQL');

  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (promtool.error) t.diagnostic(`promtool not found (${promtool.error.message}); the Prometheus checks are skipped`);
  else assert.equal(promtool.status, 0, `promtool check metrics:\n${promtool.stdout}${promtool.stderr}`);

  await scrapedByPrometheus(t, s.server.apiUrl, read);
});

/** A real Prometheus scrapes /metrics with the token from a file and stores the edge figures. */
async function scrapedByPrometheus(t: import('node:test').TestContext, apiUrl: string, secret: string): Promise<void> {
  if (spawnSync('prometheus', ['--version']).error) {
    t.diagnostic('prometheus not found; the scrape check is skipped (apt-get install prometheus)');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'pier-prometheus-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'token'), secret, { mode: 0o600 });
  const target = new URL(apiUrl).host;
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s }',
      'scrape_configs:',
      '  - job_name: pier',
      '    authorization: { credentials_file: token }',
      `    static_configs: [{ targets: ["${target}"] }]`,
    ].join('\n'),
  );
  const port = await freePort();
  const child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => null);
    if (!res?.ok) return [];
    return ((await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
  };
  // Bounded: Prometheus starts and scrapes within a few seconds.
  for (let i = 0; i < 120; i++) {
    const up = await query('up{job="pier"}');
    const edges = await query('pier_edge_endpoint_connections_total{endpoint="metered/21800"}');
    if (up[0]?.value[1] === '1' && edges[0]?.value[1] === '17') return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`Prometheus did not scrape /metrics: up=${JSON.stringify(await query('up'))}\n${log}`);
}
