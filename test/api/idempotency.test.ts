// Idempotency-Key on mutating POSTs: a retry with the same key and body gets the first answer
// again (not redone); the same key with another body is refused with 422.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { apps, releases } from '../../db/schema/index.js';
import { newId } from '../../api/ids.js';
import type { ErrorBody } from '../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../support/test-api.js';

test('Idempotency-Key', async (t) => {
  const api = await createTestApi(t);
  const orgId = await createOrg(api.db, 'acme');
  const appId = await createApp(api.db, orgId, 'alpha');
  const releaseId = newId('rel');
  await api.db.insert(releases).values({
    id: releaseId,
    appId,
    version: 1,
    manifest: { app: 'alpha', image: 'x', processes: { web: { count: 1, env: {} } }, endpoints: [], env: {} },
    image: 'x',
    imageId: 'sha256:1',
    imageDigest: 'sha256:1',
    configHash: 'h1',
  });
  await api.db.update(apps).set({ currentReleaseId: releaseId }).where(eq(apps.id, appId));
  const token = await createToken(api.db, orgId, { scope: 'deploy' });
  const scale = (key: string, counts: Record<string, number>) =>
    api.app.request('/v1/apps/alpha/scale', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ counts }),
    });

  await t.test('a replay returns the same status and body, marked as replayed, without doing the work again', async () => {
    const first = await scale('key-1', { web: 3 });
    const firstBody = await first.text();
    assert.equal(first.status, 200, firstBody);
    assert.deepEqual(JSON.parse(firstBody), { app: 'alpha', scale: { web: 3 }, changed: true });
    const enqueued = api.enqueued.length;

    const replay = await scale('key-1', { web: 3 });
    assert.equal(replay.status, 200);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(await replay.json(), JSON.parse(firstBody), 'the first answer (changed: true), not a new one (changed: false)');
    assert.equal(api.enqueued.length, enqueued, 'the scheduler was not asked again');
  });

  await t.test('the same key with another body is 422 E_IDEMPOTENCY_KEY_REUSED', async () => {
    const res = await scale('key-1', { web: 5 });
    const body = (await res.json()) as ErrorBody;
    assert.equal(res.status, 422);
    assert.equal(body.error.code, 'E_IDEMPOTENCY_KEY_REUSED');
    const [row] = await api.db.select().from(apps).where(eq(apps.id, appId));
    assert.deepEqual(row?.scale, { web: 3 }, 'nothing changed');
  });

  await t.test('without a key, each request is done', async () => {
    const res = await api.request('/v1/apps/alpha/scale', { token, body: { counts: { web: 3 } } });
    assert.deepEqual(await res.json(), { app: 'alpha', scale: { web: 3 }, changed: false });
  });
});
