import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { createTestDb } from '../support/test-db.js';
import { orgs, apps } from '../../db/schema/index.js';

test('migrations apply and tables accept rows', async (t) => {
  const { db } = await createTestDb(t);
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
