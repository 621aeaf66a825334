// The Docker engine goes away while `pier server` runs a health-checked app on it: the server
// survives, answers 503 E_RUNTIME_UNAVAILABLE to requests that need the engine, /healthz shows
// the engine down, and within 10 s of the engine returning it answers again and the app runs
// again. The engine is the test's own second dockerd (test/support/docker-engine.ts). The outage
// is on record: `pier events --json` shows it as system events beside two apps' events, and a
// token bound to one app sees that app's events only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { DeployView, StatusView } from '../../api/views.js';
import { startDockerEngine } from '../support/docker-engine.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { randomInt } from 'node:crypto';
import { randomUlaPrefix } from '../../api/private/private-prefixes.js';

const RECOVERY_MS = 10_000;
const TAG = 'pier-test/busybox:1';

async function call(server: PierServer, path: string, body?: unknown): Promise<{ status: number; code: string | null; json: unknown }> {
  try {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const json = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
    return { status: res.status, code: json?.error?.code ?? null, json };
  } catch (err) {
    return { status: 0, code: `fetch failed: ${(err as Error).message}`, json: null };
  }
}

async function dockerHealth(server: PierServer): Promise<string | undefined> {
  const res = await fetch(`${server.apiUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status?: string; dependencies?: Record<string, { status: string }> };
  return body.dependencies?.docker?.status;
}

async function status(server: PierServer): Promise<StatusView> {
  return (await call(server, '/v1/apps/steady')).json as StatusView;
}

test('pier server survives its Docker engine stopping with a health-checked app, answers 503 meanwhile, and recovers', async (t) => {
  if (!(await requireDocker(t))) return;
  await ensureBusyboxImage(TAG);
  const engine = await startDockerEngine(t, { images: [TAG] });
  // Private prefixes of its own: this engine shares the host's routes with the machine's main
  // engine, whose Pier servers' private bridges hold the default prefixes (a real clash here).
  const server = await startPierServer(t, { DOCKER_HOST: engine.host, PIER_PRIVATE_IPV6: randomUlaPrefix(), PIER_PRIVATE_IPV4: `10.${randomInt(211, 255)}.0.0/16` });
  if (process.env.PIER_TEST_KEEP_LOG) t.after(async () => (await import('node:fs/promises')).writeFile(process.env.PIER_TEST_KEEP_LOG as string, server.stderr()));

  const manifest = {
    app: 'steady',
    image: TAG,
    processes: { web: { cmd: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'], count: 2, check: { type: 'exec', command: ['true'], interval: '300ms', restart_threshold: 3, unhealthy_threshold: 1 } } },
  };
  const deployed = await call(server, '/v1/deploys', { manifest });
  assert.equal(deployed.status, 201, JSON.stringify(deployed.json));
  const other = await call(server, '/v1/deploys', { manifest: { app: 'other', image: TAG, processes: { web: { cmd: ['sleep', '3600'], count: 1 } } } });
  assert.equal(other.status, 201, JSON.stringify(other.json));
  const depId = (deployed.json as DeployView).deployment.id;
  for (let i = 0; i < 240; i++) {
    const d = (await call(server, `/v1/deployments/${depId}`)).json as { state: string };
    if (d.state !== 'running') break;
    await delay(250);
  }
  const before = await status(server);
  assert.equal(before.deployment?.state, 'succeeded', JSON.stringify(before));
  assert.deepEqual(before.instances.map((i) => `${i.state} ${i.health}`), ['running healthy', 'running healthy']);
  const instance = before.instances[0]?.id as string;
  assert.equal(await dockerHealth(server), 'up');

  await engine.stop();

  // Meanwhile: whatever needs the engine says it is unavailable; the server itself stays up.
  const needEngine = async () => [
    await call(server, '/v1/apps/steady/logs?tail=5'),
    await call(server, `/v1/apps/steady/instances/${instance}/exec`, { cmd: ['true'] }),
    await call(server, '/v1/deploys', { manifest: { ...manifest, env: { AGAIN: '1' } } }),
  ];
  let sawDown = false;
  for (let i = 0; i < 50 && !sawDown; i++) {
    sawDown = (await dockerHealth(server)) === 'down';
    if (!sawDown) await delay(100);
  }
  assert.ok(sawDown, '/healthz reports the engine down');
  const answers: { status: number; code: string | null }[] = [];
  // Long enough for the health monitor to fail its checks past the restart threshold.
  for (let round = 0; round < 5; round++) {
    for (const a of await needEngine()) answers.push({ status: a.status, code: a.code });
    assert.equal(server.ended(), null, `the server died while the engine was down:\n${server.stderr().slice(-4000)}`);
    await delay(1_000);
  }
  assert.equal((await call(server, '/v1/apps')).status, 200, 'what does not need the engine still answers');
  assert.equal(server.ended(), null, `the server died while the engine was down:\n${server.stderr().slice(-4000)}`);

  await engine.start();
  const back = Date.now();
  let recovered = false;
  while (!recovered && Date.now() - back < RECOVERY_MS + 20_000) {
    recovered = (await call(server, '/v1/apps/steady/logs?tail=5')).status === 200 && (await dockerHealth(server)) === 'up';
    if (!recovered) await delay(100);
  }
  const took = Date.now() - back;
  t.diagnostic(`engine calls answered again ${took} ms after the engine returned; answers while down: ${JSON.stringify(answers.slice(0, 3))}`);
  assert.ok(recovered && took <= RECOVERY_MS, `answered again ${took} ms after the engine returned`);

  // The engine stopped the containers with it: the app is brought back, checked healthy.
  let after: StatusView | null = null;
  for (let i = 0; i < 240; i++) {
    after = await status(server);
    if (after.instances.filter((x) => x.state === 'running' && x.health === 'healthy').length === 2) break;
    await delay(250);
  }
  assert.equal(after?.instances.filter((x) => x.state === 'running' && x.health === 'healthy').length, 2, JSON.stringify(after?.instances));
  assert.equal(server.ended(), null);
  assert.doesNotMatch(server.stderr(), /"level":60/, 'no fatal log line');

  const wrong = answers.filter((a) => a.status !== 503 || a.code !== 'E_RUNTIME_UNAVAILABLE');
  assert.deepEqual(wrong, [], `${wrong.length} of ${answers.length} engine-backed answers were not 503 E_RUNTIME_UNAVAILABLE`);
  // The last-resort handler kept the server up; the background tasks should not have needed it.
  const stray = server.stderr().split('\n').filter((l) => l.includes('unhandled promise rejection'));
  assert.deepEqual(stray.slice(0, 2), [], `${stray.length} unhandled rejections reached the last-resort handler`);

  // One stream for everything: both apps' events and the outage, as system events.
  type Ev = { app: string; type: string; data: Record<string, unknown> };
  let all: Ev[] = [];
  for (let i = 0; i < 100; i++) {
    const r = await runPier(['events', '--json'], server.env);
    assert.equal(r.code, 0, r.stderr);
    all = JSON.parse(r.stdout) as Ev[];
    if (all.some((e) => e.type === 'runtime.available')) break;
    await delay(200);
  }
  const system = all.filter((e) => e.app === '').map((e) => e.type);
  assert.ok(system.includes('server.started'), JSON.stringify(system));
  assert.ok(system.indexOf('runtime.unavailable') >= 0 && system.indexOf('runtime.unavailable') < system.indexOf('runtime.available'), `the outage and its end, in order: ${JSON.stringify(system)}`);
  assert.deepEqual([...new Set(all.filter((e) => e.app !== '').map((e) => e.app))].sort(), ['other', 'steady']);
  const onlySystem = await runPier(['events', '--system', '--type', 'runtime.*', '--json'], server.env);
  assert.equal(onlySystem.code, 0, onlySystem.stderr);
  // The outage, and only runtime events: unavailable then available, once (or again, when the
  // engine answered and failed once more while it came back on a loaded machine).
  const runtimeTypes = (JSON.parse(onlySystem.stdout) as Ev[]).map((e) => e.type);
  assert.ok(runtimeTypes.length >= 2 && runtimeTypes.length % 2 === 0, JSON.stringify(runtimeTypes));
  runtimeTypes.forEach((type, i) => assert.equal(type, i % 2 === 0 ? 'runtime.unavailable' : 'runtime.available', JSON.stringify(runtimeTypes)));

  // A token bound to one app: its app's events, nothing of the other app or of the platform.
  const made = await runPier(['tokens', 'create', '--scope', 'read', '--app', 'steady', '--json'], server.env);
  assert.equal(made.code, 0, made.stderr);
  const bound = { ...server.env, PIER_API_URL: server.apiUrl, PIER_TOKEN: (JSON.parse(made.stdout) as { secret: string }).secret };
  const seen = await runPier(['events', '--json'], bound);
  assert.equal(seen.code, 0, seen.stderr);
  const apps = new Set((JSON.parse(seen.stdout) as Ev[]).map((e) => e.app));
  assert.deepEqual([...apps], ['steady']);
  const refused = await runPier(['events', '--system'], bound);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /E_FORBIDDEN/);
});
