// PostgreSQL goes away and comes back 20 times while `pier server` runs on it with a
// health-checked app, API requests in a loop and a deploy per round: the server never dies,
// answers 503 E_DATABASE_UNAVAILABLE while the database is down, /healthz says so, and it
// answers again within 10 s of the database returning, and each outage it noticed is on record as
// database.unavailable then database.available. The database is the test's own
// (test/support/postgres-cluster.ts), never the machine's shared one.
// test-pass: once — its PostgreSQL is its own cluster, whatever DATABASE_URL says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import type { DeployView, DeploymentView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { startPierServer, type PierServer } from '../support/pier-process.js';
import { postgresProgramsMissing, startPostgresCluster } from '../support/postgres-cluster.js';

const ROUNDS = 20;
const RECOVERY_MS = 10_000;

interface Answer {
  status: number;
  code: string | null;
}

async function call(server: PierServer, path: string, body?: unknown): Promise<Answer & { json: unknown }> {
  try {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const json = (await res.json().catch(() => null)) as { error?: { code?: string } } | null;
    return { status: res.status, code: json?.error?.code ?? null, json };
  } catch (err) {
    return { status: 0, code: `fetch failed: ${(err as Error).message}`, json: null };
  }
}

function manifest(image: string, round: number) {
  return {
    app: 'steady',
    image,
    env: { ROUND: String(round) },
    processes: { web: { cmd: ['sh', '-c', "trap 'exit 0' TERM; nc -ll -p 8080 -e cat & wait"], count: 2, check: { type: 'exec', command: ['true'], interval: '300ms' } } },
    deploy: { strategy: 'rolling', max_surge: 2, drain: '200ms', timeout: '60s' },
  };
}

async function health(server: PierServer): Promise<{ status?: string; dependencies?: Record<string, { status: string }> }> {
  const res = await fetch(`${server.apiUrl}/healthz`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as { status?: string; dependencies?: Record<string, { status: string }> };
}

test(`pier server rides out ${ROUNDS} PostgreSQL restarts under load: never dies, 503 while down, back within 10 s`, async (t) => {
  if (!(await requireDocker(t))) return;
  const missing = await postgresProgramsMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  const image = await ensureBusyboxImage();
  const cluster = await startPostgresCluster(t);
  const server = await startPierServer(t, {}, { databaseUrl: cluster.url });
  if (process.env.PIER_TEST_KEEP_LOG) t.after(async () => (await import('node:fs/promises')).writeFile(process.env.PIER_TEST_KEEP_LOG as string, server.stderr()));

  const first = await call(server, '/v1/deploys', { manifest: manifest(image, 0) });
  assert.equal(first.status, 201, JSON.stringify(first.json));
  const appId = (first.json as DeployView).app.id;
  t.after(() => removeAppContainers(appId));

  // Load: readers in a loop for the whole test, whatever the database does.
  let stop = false;
  let requests = 0;
  const readers = [0, 1, 2].map(async (n) => {
    const paths = ['/v1/apps', '/v1/apps/steady', '/v1/apps/steady/events?limit=20'];
    for (let i = 0; i < 100_000 && !stop; i++) {
      await call(server, paths[(i + n) % paths.length] as string);
      requests++;
      await delay(25);
    }
  });

  const whileDown: Answer[] = [];
  const recoveries: number[] = [];
  const healthDown: boolean[] = [];
  let lastDeployment = (first.json as DeployView).deployment.id;
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      await cluster.stop();
      assert.equal(server.ended(), null, `the server died at round ${round}:\n${server.stderr().slice(-4000)}`);

      // Down: what the API answers, and what /healthz says (its probe is cached for 2 s).
      for (let i = 0; i < 3; i++) {
        const r = await call(server, '/v1/apps');
        whileDown.push({ status: r.status, code: r.code });
        await delay(100);
      }
      let sawDown = false;
      for (let i = 0; i < 50 && !sawDown; i++) {
        sawDown = (await health(server)).dependencies?.database?.status === 'down';
        if (!sawDown) await delay(100);
      }
      healthDown.push(sawDown);
      assert.equal(server.ended(), null, `the server died while the database was down (round ${round}):\n${server.stderr().slice(-4000)}`);

      await cluster.start();
      const back = Date.now();
      let ok = false;
      while (!ok && Date.now() - back < RECOVERY_MS + 20_000) {
        ok = (await call(server, '/v1/apps')).status === 200;
        if (!ok) await delay(100);
      }
      recoveries.push(ok ? Date.now() - back : Infinity);

      // A deploy per round keeps the scheduler (and its reconcile locks) busy across the next stop.
      const deployed = await call(server, '/v1/deploys', { manifest: manifest(image, round) });
      if (deployed.status === 201) lastDeployment = (deployed.json as DeployView).deployment.id;
    }
  } finally {
    stop = true;
    await Promise.all(readers);
  }

  const codes = new Map<string, number>();
  for (const a of whileDown) codes.set(`${a.status} ${a.code}`, (codes.get(`${a.status} ${a.code}`) ?? 0) + 1);
  t.diagnostic(`requests: ${requests}; recovery ms per round: ${recoveries.join(' ')}; answers while down: ${[...codes].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  assert.equal(server.ended(), null, `the server died:\n${server.stderr().slice(-4000)}`);
  assert.ok(requests > ROUNDS * 10, `the readers kept the API busy (${requests} requests)`);
  const slow = recoveries.map((ms, i) => ({ round: i + 1, ms })).filter((r) => !(r.ms <= RECOVERY_MS));
  assert.deepEqual(slow, [], `rounds where the API did not answer within ${RECOVERY_MS} ms of the database returning`);
  assert.deepEqual(healthDown.map((d, i) => (d ? null : i + 1)).filter((r) => r !== null), [], 'rounds where /healthz did not report the database down');
  // /healthz caches its probes for 2 s: it says "up" again within that of the database's return.
  let healthUp = false;
  for (let i = 0; i < 100 && !healthUp; i++) {
    healthUp = (await health(server)).dependencies?.database?.status === 'up';
    if (!healthUp) await delay(100);
  }
  assert.ok(healthUp, '/healthz reports the database up again');

  // After the last restart the app converges: the newest deploy finishes, no crash on the way.
  let dep: DeploymentView | null = null;
  for (let i = 0; i < 240; i++) {
    dep = (await call(server, `/v1/deployments/${lastDeployment}`)).json as DeploymentView;
    if (dep?.state !== 'running') break;
    await delay(500);
  }
  assert.equal(dep?.state, 'succeeded', JSON.stringify(dep));
  assert.doesNotMatch(server.stderr(), /"level":60/, 'no fatal log line');
  const stray = server.stderr().split('\n').filter((l) => /unhandled promise rejection|known library defect/.test(l));
  assert.deepEqual(stray.slice(0, 2), [], `${stray.length} errors reached the last-resort handler`);

  // The outages are on record as system events (written once the database answers again).
  let outages: string[] = [];
  for (let i = 0; i < 100; i++) {
    const page = (await call(server, '/v1/events?system=true&type=database.*&limit=1000')).json as { events?: { type: string }[] } | null;
    outages = page?.events?.map((e) => e.type) ?? [];
    if (outages.includes('database.available')) break;
    await delay(200);
  }
  assert.equal(outages[0], 'database.unavailable', JSON.stringify(outages));
  assert.ok(outages.includes('database.available'), `an outage and its end: ${JSON.stringify(outages)}`);

  // Last, as the contract for clients: while the database is down the API says so, with a code
  // a client may retry on.
  const wrong = whileDown.filter((a) => a.status !== 503 || a.code !== 'E_DATABASE_UNAVAILABLE');
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} of ${whileDown.length} answers while the database was down were not 503 E_DATABASE_UNAVAILABLE`);
});
