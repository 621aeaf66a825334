// The deploy service's writes are all-or-nothing: a deploy (or scale) interrupted between any two
// of its writes — by an error, or on PostgreSQL by its connection dying — leaves the whole change
// or none of it. Errors keep their meaning: a lost connection is E_DATABASE_UNAVAILABLE (503), a
// concurrent release number is E_CONFLICT (by its constraint), text the database cannot store is 422.
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import postgres from 'postgres';
import { drizzle } from 'drizzle-orm/postgres-js';
import { pino } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, deployments, endpoints, events, releases } from '../../db/schema/index.js';
import { createApi } from '../../api/app.js';
import { classifyDatabaseError } from '../../api/database-errors.js';
import { parseManifest } from '../../api/manifest.js';
import { newId } from '../../api/ids.js';
import { PierError } from '../../api/pier-error.js';
import type { Checkpoint } from '../../api/transactions.js';
import { createControlPlane, echoManifest, type ControlPlane } from '../support/memory-control-plane.js';

const onPostgres = Boolean(process.env.DATABASE_URL);

/** A connection of the test's own, to kill a transaction's session from outside (as a failover would). */
let killer: postgres.Sql | null = null;
after(() => killer?.end({ timeout: 1 }));

/**
 * Where the test reads what the database holds. On PostgreSQL a pool of its own: postgres.js
 * 3.4.9 hands the error of a killed session once more to the next query on that connection after
 * it reconnects, which is the server's retryable 503 (see below), not the state under test.
 */
async function reader(t: TestContext, cp: ControlPlane): Promise<Db> {
  if (!onPostgres) return cp.db;
  const [current] = (await cp.db.execute(sql`select current_database() as db`)) as unknown as { db: string }[];
  const url = new URL(process.env.DATABASE_URL as string);
  url.pathname = `/${current?.db}`;
  const client = postgres(url.toString(), { max: 2, onnotice: () => {} });
  t.after(() => client.end({ timeout: 1 }));
  return drizzle(client) as unknown as Db;
}

/** Retries what a client would retry: E_DATABASE_UNAVAILABLE, a few times. */
async function retried<T>(what: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await what();
    } catch (err) {
      if (attempt >= 3 || classifyDatabaseError(err)?.code !== 'E_DATABASE_UNAVAILABLE') throw err;
    }
  }
}

async function killSession(tx: Db): Promise<never> {
  const [me] = (await tx.execute(sql`select pg_backend_pid() as pid`)) as unknown as { pid: number }[];
  if (!me) throw new Error('no backend pid');
  // On the server's main database: each test's own database is dropped when the test ends.
  killer ??= postgres(process.env.DATABASE_URL as string, { max: 1, onnotice: () => {} });
  // Killed while a statement runs on it, as when the server goes down under a write.
  // (then() sends it now: drizzle queries are lazy, and one sent after the session died would
  // hit porsager/postgres#1154, which the server avoids by never idling inside a transaction.)
  const running = tx.execute(sql`select pg_sleep(30)`).then(
    () => undefined,
    (err: unknown) => err,
  );
  await killer`select pg_terminate_backend(${me.pid}, 5000)`;
  throw (await running) ?? new Error('the session survived pg_terminate_backend');
}

/** A checkpoint hook that records the names it passes and, when armed, breaks the transaction at the n-th. */
function faults() {
  const names: string[] = [];
  let armedAt = -1;
  let seen = 0;
  const hook: Checkpoint = async (name, tx) => {
    names.push(name);
    if (seen++ !== armedAt) return;
    // On PostgreSQL the transaction's connection dies, as in a crash or a failover.
    if (onPostgres) await killSession(tx);
    throw new Error(`injected fault at ${name}`);
  };
  return {
    hook,
    names,
    arm(n: number) {
      armedAt = n;
      seen = 0;
    },
    disarm() {
      armedAt = -1;
    },
  };
}

async function snapshot(db: Db, appName: string) {
  const [app] = await db.select().from(apps).where(eq(apps.name, appName));
  if (!app) return { app: null };
  const [rels, deps, eps, evs] = await Promise.all([
    db.select().from(releases).where(eq(releases.appId, app.id)),
    db.select().from(deployments).where(eq(deployments.appId, app.id)),
    db.select().from(endpoints).where(eq(endpoints.appId, app.id)),
    db.select().from(events).where(eq(events.appId, app.id)),
  ]);
  return {
    app: { currentReleaseId: app.currentReleaseId, scale: app.scale },
    releases: rels.map((r) => r.version).sort(),
    deployments: deps.map((d) => `${d.releaseId === app.currentReleaseId ? 'current' : 'old'}:${d.state}`).sort(),
    endpoints: eps.map((e) => e.port).sort(),
    events: evs.map((e) => e.type).sort(),
  };
}

async function expectInterrupted(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    if (onPostgres) assert.equal(classifyDatabaseError(err)?.code, 'E_DATABASE_UNAVAILABLE', String(err));
    else assert.match(String(err), /injected fault/);
    return true;
  });
}

async function setup(t: TestContext) {
  const f = faults();
  const cp = await createControlPlane(t, { checkpoint: f.hook });
  return { f, cp, db: await reader(t, cp) };
}

test('a first deploy interrupted between any two writes leaves no trace, not even the app', async (t) => {
  const { f, cp, db } = await setup(t);
  await cp.deploy(echoManifest('probe', { port: 9100 }));
  const points = [...f.names];
  assert.ok(points.length >= 6, `checkpoints: ${points.join(', ')}`);
  const whole = await snapshot(db, 'probe');
  assert.deepEqual(whole.events, ['deploy.started', 'endpoint.changed']);

  for (let n = 0; n < points.length; n++) {
    const name = `cut${n}`;
    f.arm(n);
    await expectInterrupted(cp.deploy(echoManifest(name, { port: 9200 + n })));
    f.disarm();
    assert.deepEqual(await snapshot(db, name), { app: null }, `interrupted at ${points[n]}`);
  }
  // The database is fine afterwards: the same deploy goes through whole.
  const done = await retried(() => cp.deploy(echoManifest('cut0', { port: 9200 })));
  assert.equal(done.created, true);
  assert.deepEqual((await snapshot(db, 'cut0')).events, ['deploy.started', 'endpoint.changed']);
});

test('a redeploy interrupted between any two writes leaves the app exactly as it was', async (t) => {
  const { f, cp, db } = await setup(t);
  await cp.deploy(echoManifest('again', { port: 9300 }));
  f.names.length = 0;
  await cp.deploy(echoManifest('again', { port: 9301, env: { V: 'probe' } }));
  const points = [...f.names];
  assert.ok(points.includes('rollout.superseded-event'), points.join(', '));
  const before = await snapshot(db, 'again');
  assert.deepEqual(before.releases, [1, 2]);
  assert.deepEqual(before.deployments, ['current:running', 'old:superseded']);

  for (let n = 0; n < points.length; n++) {
    f.arm(n);
    await expectInterrupted(cp.deploy(echoManifest('again', { port: 9302, env: { V: String(n) } })));
    f.disarm();
    assert.deepEqual(await snapshot(db, 'again'), before, `interrupted at ${points[n]}`);
  }
  await retried(() => cp.deploy(echoManifest('again', { port: 9302, env: { V: 'last' } })));
  const last = await snapshot(db, 'again');
  assert.deepEqual(last.releases, [1, 2, 3]);
  assert.deepEqual(last.endpoints, [9302]);
});

test('a scale interrupted between its write and its event changes nothing', async (t) => {
  const { f, cp, db } = await setup(t);
  await cp.deploy(echoManifest('scaled', { count: 2 }));
  f.names.length = 0;
  await cp.deploys.scale(cp.auth, 'scaled', { web: 3 });
  const points = [...f.names];
  assert.deepEqual(points, ['scale.app', 'scale.event']);
  const before = await snapshot(db, 'scaled');
  for (let n = 0; n < points.length; n++) {
    f.arm(n);
    await expectInterrupted(cp.deploys.scale(cp.auth, 'scaled', { web: 5 }));
    f.disarm();
    assert.deepEqual(await snapshot(db, 'scaled'), before, `interrupted at ${points[n]}`);
  }
});

test('a lost database connection answers 503 E_DATABASE_UNAVAILABLE with a hint to retry, never E_CONFLICT', async (t) => {
  if (!onPostgres) {
    t.diagnostic('needs PostgreSQL: the embedded database has no connection to lose');
    return;
  }
  const { f, cp } = await setup(t);
  const api = createApi({ db: cp.db, events: cp.events, runtime: cp.runtime, deploys: cp.deploys, deleter: cp.deleter, edgeFeed: cp.edgeFeed, edgeReports: cp.edgeReports, log: pino({ level: 'silent' }), sharedAddresses: [], ready: () => true });
  const send = () =>
    api.request('/v1/deploys', { method: 'POST', headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ manifest: echoManifest('http') }) });
  f.arm(2);
  const res = await send();
  f.disarm();
  const body = (await res.json()) as { error: { code: string; hint?: string } };
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.equal(body.error.code, 'E_DATABASE_UNAVAILABLE');
  assert.match(body.error.hint ?? '', /retry/);
  // As a client would: retry on 503 (the first retry may meet the killed connection's echo).
  let status = 503;
  for (let i = 0; i < 3 && status === 503; i++) status = (await send()).status;
  assert.equal(status, 201, 'the retry goes through');
});

test('a release number taken by a concurrent writer is E_CONFLICT, and the deploy leaves nothing', async (t) => {
  if (!onPostgres) {
    t.diagnostic('needs PostgreSQL: a concurrent writer needs a second connection');
    return;
  }
  let other: (() => Promise<void>) | null = null;
  const cp: ControlPlane = await createControlPlane(t, {
    checkpoint: async (name) => {
      if (name === 'deploy.versioned' && other) await other();
    },
  });
  const v1 = await cp.deploy(echoManifest('race', { port: 9400 }));
  const url = new URL(process.env.DATABASE_URL as string);
  const [current] = (await cp.db.execute(sql`select current_database() as db`)) as unknown as { db: string }[];
  url.pathname = `/${current?.db}`;
  const second = postgres(url.toString(), { max: 1, onnotice: () => {} });
  t.after(() => second.end({ timeout: 1 }));
  other = async () => {
    other = null;
    // Another writer commits release v2 while this deploy holds the app.
    await second`insert into releases (id, app_id, version, manifest, image, image_id, image_digest, config_hash) values (${newId('rel')}, ${v1.app.id}, 2, '{}'::jsonb, 'x', 'x', 'x', 'x')`;
  };
  await assert.rejects(cp.deploy(echoManifest('race', { port: 9401 })), { code: 'E_CONFLICT', status: 409 });
  const state = await snapshot(cp.db, 'race');
  assert.deepEqual(state.endpoints, [9400]);
  assert.equal(state.app?.currentReleaseId, v1.release.id);
});

test('a value the database cannot store (a NUL byte) is 422 and leaves no app behind', async (t) => {
  const cp = await createControlPlane(t);
  const manifest = parseManifest(echoManifest('nul'));
  manifest.env = { BAD: 'a\u0000b' };
  const err = await cp.deploys.deploy(cp.auth, manifest).then(
    () => null,
    (e: unknown) => e,
  );
  const known = classifyDatabaseError(err);
  assert.equal(known?.code, 'E_BAD_REQUEST', String(err));
  assert.equal(known?.status, 422);
  assert.deepEqual(await snapshot(cp.db, 'nul'), { app: null });
});

test('a manifest that builds its image cannot deploy without a build: 422 E_BUILD_REQUIRED, nothing written', async (t) => {
  const cp = await createControlPlane(t);
  const manifest = parseManifest('app = "built"\n[build]\n[processes.web]\n');
  await assert.rejects(cp.deploys.deploy(cp.auth, manifest), (err: unknown) => err instanceof PierError && err.code === 'E_BUILD_REQUIRED' && err.status === 422 && Boolean(err.hint));
  assert.deepEqual(await snapshot(cp.db, 'built'), { app: null });
});
