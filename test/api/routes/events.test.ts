// GET /v1/events: every event a token may see in one list. Two apps' events and system events
// (no app) come oldest first with each app's name; a token bound to one app sees that app's only
// and is refused system events; type prefixes, since, paging and bad filters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventView } from '../../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../../support/test-api.js';

test('one list of every event the token sees, each with its app; app-bound tokens see their app only', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const web = await createApp(api.db, org, 'web');
  const db = await createApp(api.db, org, 'db');
  const elsewhere = await createOrg(api.db, 'other-org');
  await api.events.record({ orgId: org, appId: web, type: 'deploy.started', message: 'web v1' });
  await api.events.record({ orgId: org, appId: null, type: 'runtime.unavailable', reason: 'E_RUNTIME_UNAVAILABLE', message: 'engine away' });
  await api.events.record({ orgId: org, appId: db, type: 'deploy.started', message: 'db v1' });
  await api.events.record({ orgId: org, appId: null, type: 'runtime.available', message: 'engine back' });
  await api.events.record({ orgId: elsewhere, appId: null, type: 'runtime.unavailable', message: 'not ours' });

  const admin = await createToken(api.db, org, { scope: 'read' });
  const list = async (query: string, token = admin) => {
    const res = await api.request(`/v1/events${query}`, { token });
    return { status: res.status, body: (await res.json()) as { events: EventView[]; next_cursor: string | null; error?: { code: string } } };
  };

  const all = await list('');
  assert.equal(all.status, 200);
  assert.deepEqual(
    all.body.events.map((e) => `${e.app || '-'} ${e.type}`),
    ['web deploy.started', '- runtime.unavailable', 'db deploy.started', '- runtime.available'],
  );
  assert.deepEqual((await list('?system=true')).body.events.map((e) => e.type), ['runtime.unavailable', 'runtime.available']);
  assert.deepEqual((await list('?type=runtime.*')).body.events.map((e) => e.message), ['engine away', 'engine back']);
  assert.deepEqual((await list('?type=deploy.started&app=db')).body.events.map((e) => e.message), ['db v1']);

  // Paging by id: two pages of two, then the end.
  const first = await list('?limit=2');
  assert.equal(first.body.events.length, 2);
  const second = await list(`?limit=2&cursor=${first.body.next_cursor}`);
  assert.deepEqual(second.body.events.map((e) => e.type), ['deploy.started', 'runtime.available']);

  // Since: nothing is newer than a time in the future.
  assert.deepEqual((await list(`?since=${new Date(Date.now() + 60_000).toISOString()}`)).body.events, []);

  const bound = await createToken(api.db, org, { scope: 'read', appId: web });
  assert.deepEqual((await list('', bound)).body.events.map((e) => `${e.app} ${e.message}`), ['web web v1']);
  const refused = await list('?system=true', bound);
  assert.equal(refused.status, 403);
  assert.equal(refused.body.error?.code, 'E_FORBIDDEN');
  assert.equal((await list('?app=db', bound)).status, 404, 'another app is not found for a bound token');
});

test('bad filters of GET /v1/events are refused with what was wrong', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const token = await createToken(api.db, org, { scope: 'read' });
  for (const query of ['?type=DROP%20TABLE', '?since=yesterday', '?system=maybe', '?limit=0']) {
    const res = await api.request(`/v1/events${query}`, { token });
    assert.equal(res.status, 400, query);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'E_BAD_REQUEST', query);
  }
  const both = await api.request('/v1/events?system=true&app=web', { token });
  assert.equal(both.status, 400);
});

test('GET /v1/events/stream resumes after Last-Event-ID and sends new events as they are recorded', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const web = await createApp(api.db, org, 'web');
  const token = await createToken(api.db, org, { scope: 'read' });
  const first = await api.events.record({ orgId: org, appId: web, type: 'deploy.started', message: 'one' });
  await api.events.record({ orgId: org, appId: null, type: 'server.started', message: 'two' });

  const abort = new AbortController();
  t.after(() => abort.abort());
  const res = await api.app.request('/v1/events/stream', { headers: { authorization: `Bearer ${token}`, 'last-event-id': String(first.id) }, signal: abort.signal });
  assert.equal(res.status, 200);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  const until = async (what: RegExp) => {
    for (let i = 0; i < 50 && !what.test(text); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  };
  await until(/"message":"two"/);
  assert.doesNotMatch(text, /"message":"one"/, 'nothing up to the resume point');
  assert.match(text, /event: server\.started/);
  await api.events.record({ orgId: org, appId: web, type: 'deploy.succeeded', message: 'three' });
  await until(/"message":"three"/);
  assert.match(text, /"app":"web","type":"deploy.succeeded"/);
  await reader.cancel();
});
