// What database errors mean, checked on errors the drivers really raise: a unique violation names
// its constraint, a refused or lost connection is E_DATABASE_UNAVAILABLE (503, retry), text the
// database cannot store is 422; and the API's one onError answers with them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { pino } from 'pino';
import { createApi } from '../../api/app.js';
import { classifyDatabaseError, isDatabaseUnavailable, uniqueViolation } from '../../api/database-errors.js';
import { createEventLog } from '../../api/event-log.js';
import { openDatabase } from '../../db/database.js';
import { apps, orgs } from '../../db/schema/index.js';
import { createTestDb, createTestDbUrl } from '../support/test-db.js';
import { throwingRuntime } from '../support/throwing-runtime.js';
import type { AppDeleter } from '../../api/app-deleter.js';
import type { DeployService } from '../../api/deploy-service.js';
import type { EdgeReports } from '../../api/edge-reports.js';
import type { EdgeFeed } from '../../api/edge-feed.js';

async function caught(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected an error'),
    (err: unknown) => err,
  );
}

test('a unique violation names its constraint (through drizzle, on either database)', async (t) => {
  const { db } = await createTestDb(t);
  await db.insert(orgs).values({ id: 'org_1', name: 'acme' });
  await db.insert(apps).values({ id: 'app_1', orgId: 'org_1', name: 'web' });
  const err = await caught(db.insert(apps).values({ id: 'app_2', orgId: 'org_1', name: 'web' }));
  assert.equal(uniqueViolation(err), 'apps_org_env_name');
  assert.equal(isDatabaseUnavailable(err), false);
  assert.equal(classifyDatabaseError(err), null, 'left to the caller, who knows what the constraint means');
  assert.equal(uniqueViolation(new Error('something else')), null);
});

test('a NUL byte in a value is 422 E_BAD_REQUEST, not a conflict', async (t) => {
  const { db } = await createTestDb(t);
  await db.insert(orgs).values({ id: 'org_1', name: 'acme' });
  const err = await caught(db.insert(apps).values({ id: 'app_1', orgId: 'org_1', name: 'web', scale: { 'a\u0000b': 1 } }));
  assert.deepEqual([classifyDatabaseError(err)?.code, classifyDatabaseError(err)?.status], ['E_BAD_REQUEST', 422]);
});

test('a refused connection and a killed session are E_DATABASE_UNAVAILABLE', async (t) => {
  const refused = postgres('postgres://pier:pier@127.0.0.1:1/none', { max: 1, connect_timeout: 2, onnotice: () => {} });
  t.after(() => refused.end({ timeout: 0 }));
  const err = await caught(refused`select 1`);
  const known = classifyDatabaseError(err);
  assert.deepEqual([known?.code, known?.status], ['E_DATABASE_UNAVAILABLE', 503]);
  assert.match(known?.hint ?? '', /retry/);

  const url = await createTestDbUrl(t);
  if (!url) return t.diagnostic('the killed-session half needs PostgreSQL');
  const victim = postgres(url, { max: 1, onnotice: () => {} });
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => Promise.all([victim.end({ timeout: 1 }), admin.end({ timeout: 1 })]));
  const [{ pid }] = (await victim`select pg_backend_pid() as pid`) as unknown as [{ pid: number }];
  const sleeping = caught(victim`select pg_sleep(30)`);
  await admin`select pg_terminate_backend(${pid}, 5000)`;
  const killed = await sleeping;
  assert.equal(classifyDatabaseError(killed)?.code, 'E_DATABASE_UNAVAILABLE', String(killed));
});

test('the API answers a database outage with 503 E_DATABASE_UNAVAILABLE', async (t) => {
  const url = await createTestDbUrl(t);
  const database = await openDatabase({ url, dataDir: 'memory://' });
  const log = pino({ level: 'silent' });
  const api = createApi({
    db: database.db,
    events: createEventLog(database.db),
    runtime: throwingRuntime(),
    deploys: {} as DeployService,
    deleter: {} as AppDeleter,
    edgeFeed: {} as EdgeFeed,
    edgeReports: {} as EdgeReports,
    log,
    sharedAddresses: [],
    ready: () => true,
  });
  await database.db.execute(sql`select 1`);
  // The database goes away under the running API.
  await database.close();
  const res = await api.request('/v1/apps', { headers: { authorization: 'Bearer pier_whatever' } });
  const body = (await res.json()) as { error: { code: string; hint: string } };
  assert.equal(res.status, 503, JSON.stringify(body));
  assert.equal(body.error.code, 'E_DATABASE_UNAVAILABLE');
});
