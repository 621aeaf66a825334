// Prometheus as users run it: Debian's prometheus scrapes a running `pier server` on loopback
// with an org-wide read token, loads the shipped alert rules (docs/monitoring/alerts.yml, which
// promtool accepts), a failed deploy fires PierDeployFailed and a crash-looping app PierCrashLoop. The rules run as shipped except
// their `for:` waits, set to 0s so the test does not sit out minutes.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { DeployView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer } from '../support/pier-process.js';
import { freePort } from '../support/tcp-client.js';

const run = promisify(execFile);
const RULES = fileURLToPath(new URL('../../../docs/monitoring/alerts.yml', import.meta.url));

test('Prometheus scrapes pier server, loads the shipped alert rules, and a crash loop fires its alert', async (t) => {
  if (!(await requireDocker(t))) return;
  if (!existsSync('/usr/bin/prometheus') || !existsSync('/usr/bin/promtool')) {
    t.skip('prometheus is not installed (apt-get install prometheus)');
    return;
  }
  const checked = await run('promtool', ['check', 'rules', RULES]);
  assert.match(checked.stdout, /SUCCESS: \d+ rules found/);

  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const made = await runPier(['tokens', 'create', '--scope', 'read', '--name', 'prometheus', '--json'], server.env);
  assert.equal(made.code, 0, made.stderr);
  const tokenFile = join(server.dir, 'prometheus-token');
  await writeFile(tokenFile, (JSON.parse(made.stdout) as { secret: string }).secret, { mode: 0o600 });

  const rules = (await readFile(RULES, 'utf8')).replace(/^(\s+)for: .+$/gm, '$1for: 0s');
  await writeFile(join(server.dir, 'alerts.yml'), rules);
  const target = new URL(server.apiUrl).host;
  await writeFile(
    join(server.dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [alerts.yml]\nscrape_configs:\n  - job_name: pier\n    metrics_path: /metrics\n    authorization:\n      credentials_file: ${tokenFile}\n    static_configs:\n      - targets: ['${target}']\n`,
  );
  await run('promtool', ['check', 'config', join(server.dir, 'prometheus.yml')]);
  const port = await freePort();
  const prom = spawn('prometheus', [`--config.file=${join(server.dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(server.dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let promLog = '';
  prom.stderr.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-8000)));
  t.after(() => {
    if (prom.exitCode === null) prom.kill('SIGTERM');
  });
  const api = async <T>(path: string): Promise<T | null> => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
      return ((await res.json()) as { data: T }).data;
    } catch {
      return null;
    }
  };

  // The scrape works with the token: the target is up, and Pier's figures are there.
  let health: string | undefined;
  for (let i = 0; i < 120 && health !== 'up'; i++) {
    const targets = await api<{ activeTargets: { health: string; lastError: string }[] }>('/api/v1/targets');
    health = targets?.activeTargets[0]?.health;
    if (health !== 'up') await delay(500);
  }
  assert.equal(health, 'up', `the scrape of ${target} did not work:\n${promLog}`);
  let series: { data?: unknown }[] = [];
  for (let i = 0; i < 40 && series.length === 0; i++) {
    series = (await api<{ data?: unknown }[]>(`/api/v1/series?match[]=${encodeURIComponent('pier_runtime_up')}`)) ?? [];
    if (series.length === 0) await delay(500);
  }
  assert.ok(series.length > 0, 'pier_runtime_up is scraped');
  const groups = await api<{ groups: { rules: { name: string; health: string }[] }[] }>('/api/v1/rules');
  const loaded = groups?.groups.flatMap((g) => g.rules) ?? [];
  assert.ok(loaded.some((r) => r.name === 'PierCrashLoop'), JSON.stringify(loaded.map((r) => r.name)));

  const deploy = async (app: string, cmd: string) => {
    const res = await fetch(`${server.apiUrl}/v1/deploys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ manifest: { app, image, processes: { web: { cmd: ['sh', '-c', cmd] } } } }),
    });
    assert.equal(res.status, 201);
    const id = ((await res.json()) as DeployView).app.id;
    t.after(() => removeAppContainers(id));
  };
  const firingOf = async (name: string): Promise<{ labels: Record<string, string> }[]> => {
    for (let i = 0; i < 180; i++) {
      const alerts = await api<{ alerts: { labels: Record<string, string>; state: string }[] }>('/api/v1/alerts');
      const firing = (alerts?.alerts ?? []).filter((a) => a.labels.alertname === name && a.state === 'firing');
      if (firing.length) return firing;
      await delay(500);
    }
    return [];
  };

  // A first release that exits at once fails its deploy: PierDeployFailed.
  await deploy('broken', 'exit 3');
  assert.equal((await firingOf('PierDeployFailed')).length, 1, `PierDeployFailed did not fire:\n${promLog}`);

  // A release that runs, then exits again and again: after three exits Pier holds it back.
  await deploy('crashy', 'sleep 4; exit 4');
  const firing = await firingOf('PierCrashLoop');
  assert.deepEqual(
    firing.map((a) => `${a.labels.app}/${a.labels.process}`),
    ['crashy/web'],
    `PierCrashLoop did not fire; pier events:\n${(await runPier(['events', '--app', 'crashy'], server.env)).stdout}`,
  );
});
