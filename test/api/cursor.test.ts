// Pagination of every list route: `limit` and an opaque `cursor` walk the whole list once, in
// order, ending with next_cursor null; a cursor that is not one of ours is a 400.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instances, nodes, releases } from '../../db/schema/index.js';
import { newId } from '../../api/ids.js';
import type { ErrorBody } from '../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../support/test-api.js';

test('list routes page with limit and cursor', async (t) => {
  const api = await createTestApi(t);
  const orgId = await createOrg(api.db, 'acme');
  const names = ['a01', 'a02', 'a03', 'a04', 'a05'];
  const appIds: string[] = [];
  for (const name of names) appIds.push(await createApp(api.db, orgId, name));
  const appId = appIds[0] as string;
  const admin = await createToken(api.db, orgId, { scope: 'admin' });
  for (let i = 0; i < 4; i++) await createToken(api.db, orgId, { scope: 'read' });

  const releaseIds: string[] = [];
  for (let v = 1; v <= 5; v++) {
    const id = newId('rel');
    releaseIds.push(id);
    await api.db.insert(releases).values({ id, appId, version: v, manifest: {}, image: 'x', imageId: `sha256:${v}`, imageDigest: `sha256:${v}`, configHash: `h${v}` });
  }
  const nodeId = newId('node');
  await api.db.insert(nodes).values({ id: nodeId, name: 'local', endpoint: 'unix:///var/run/docker.sock' });
  // Two instances share a created_at, so the order needs the id as a tie-breaker.
  const same = new Date();
  for (let i = 0; i < 5; i++) {
    await api.db.insert(instances).values({ id: `a01-web-${i}`, appId, releaseId: releaseIds[0] as string, process: 'web', nodeId, createdAt: i < 2 ? same : new Date(same.getTime() + i * 1000) });
  }
  for (let i = 0; i < 5; i++) await api.events.record({ orgId, appId, type: 'test.event', reason: 'test', message: `event ${i}`, data: {} });

  /** Every item of a list, two at a time, with the number of pages it took. */
  async function walk(path: string, key: string): Promise<{ items: Record<string, unknown>[]; pages: number }> {
    const items: Record<string, unknown>[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const res = await api.request(`${path}${sep}limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: admin });
      const body = (await res.json()) as Record<string, unknown> & { next_cursor: string | null };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.ok((body[key] as unknown[]).length <= 2);
      items.push(...(body[key] as Record<string, unknown>[]));
      cursor = body.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    return { items, pages };
  }

  await t.test('apps, by name', async () => {
    const { items, pages } = await walk('/v1/apps', 'apps');
    assert.deepEqual(items.map((a) => a.name), names);
    assert.equal(pages, 3);
  });

  await t.test('releases, newest first', async () => {
    const { items } = await walk('/v1/apps/a01/releases', 'releases');
    assert.deepEqual(items.map((r) => r.version), [5, 4, 3, 2, 1]);
  });

  await t.test('instances, newest first, none lost when two share a creation time', async () => {
    const { items } = await walk('/v1/apps/a01/instances', 'instances');
    assert.deepEqual(items.map((i) => i.id), ['a01-web-4', 'a01-web-3', 'a01-web-2', 'a01-web-1', 'a01-web-0']);
  });

  await t.test('events, oldest first', async () => {
    const { items } = await walk('/v1/apps/a01/events', 'events');
    assert.deepEqual(items.map((e) => e.message), ['event 0', 'event 1', 'event 2', 'event 3', 'event 4']);
  });

  await t.test('tokens, oldest first', async () => {
    const { items } = await walk('/v1/tokens', 'tokens');
    assert.equal(items.length, 5);
    assert.equal(new Set(items.map((x) => x.id)).size, 5);
  });

  await t.test('without limit, a short list comes whole with next_cursor null', async () => {
    const res = await api.request('/v1/apps', { token: admin });
    const body = (await res.json()) as { apps: unknown[]; next_cursor: string | null };
    assert.equal(body.apps.length, 5);
    assert.equal(body.next_cursor, null);
  });

  await t.test('a cursor that is not ours, or a bad limit, is 400 E_BAD_REQUEST', async () => {
    for (const q of ['cursor=not-a-cursor', `cursor=${Buffer.from('{"version":"x"}').toString('base64url')}`, 'limit=0', 'limit=5000']) {
      const res = await api.request(`/v1/apps/a01/releases?${q}`, { token: admin });
      assert.equal(res.status, 400, q);
      assert.equal(((await res.json()) as ErrorBody).error.code, 'E_BAD_REQUEST');
    }
  });
});
