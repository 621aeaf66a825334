import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { createTestDb, createTestDbUrl } from '../support/test-db.js';
import { openDatabase } from '../../db/database.js';
import { orgs, apps } from '../../db/schema/index.js';

test('migrations apply and tables accept rows', async (t) => {
  // An empty database, migrated here: createTestDb() copies a migrated template.
  const database = await openDatabase({ url: await createTestDbUrl(t), dataDir: 'memory://' });
  t.after(() => database.close());
  const { db } = database;
  await db.insert(orgs).values({ id: 'org_1', name: 'default' });
  await db.insert(apps).values({ id: 'app_1', orgId: 'org_1', name: 'echo' });
  const rows = await db.select().from(apps).where(eq(apps.orgId, 'org_1'));
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.name, 'echo');
});

test('app names are unique within an org', async (t) => {
  const { db } = await createTestDb(t);
  await db.insert(orgs).values({ id: 'org_1', name: 'default' });
  await db.insert(apps).values({ id: 'app_1', orgId: 'org_1', name: 'echo' });
  await assert.rejects(db.insert(apps).values({ id: 'app_2', orgId: 'org_1', name: 'echo' }));
});

test('an advisory lock is held by one session at a time and can be taken again once released', async (t) => {
  const url = await createTestDbUrl(t);
  const a = await openDatabase({ url, dataDir: 'memory://' });
  t.after(() => a.close());
  // On PostgreSQL the second holder is another connection pool, as another server process would be.
  const b = url ? await openDatabase({ url, dataDir: 'memory://' }) : a;
  if (b !== a) t.after(() => b.close());
  const held = await a.locks.tryLock('pier:reconcile:app_1');
  assert.ok(held, 'the first session takes the lock');
  assert.equal(await b.locks.tryLock('pier:reconcile:app_1'), null, 'a second session is refused');
  assert.equal(await a.locks.tryLock('pier:reconcile:app_1'), null, 'the holder itself is refused a second time');
  const other = await b.locks.tryLock('pier:reconcile:app_2');
  assert.ok(other, 'another key is free');
  await other.release();
  await held.release();
  assert.equal(held.signal.aborted, false, 'a released lock was not lost');
  const again = await b.locks.tryLock('pier:reconcile:app_1');
  assert.ok(again, 'free again after release');
  await again.release();
});
