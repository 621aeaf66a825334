// The org-wide event list and stream for a token bound to environments (`pr-*`): the events of
// apps in its environments and of those environments themselves, never production's, another
// environment's or the platform's (system events); an app id of another environment is not found.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { apps, tokens } from '../../../db/schema/index.js';
import { newId } from '../../../api/ids.js';
import { createOrg, createTestApi, createToken } from '../../support/test-api.js';

test('a token bound to pr-* reads only its environments’ events, in the list and the stream', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const app = async (environment: string) => {
    const id = newId('app');
    await api.db.insert(apps).values({ id, orgId: org, name: 'web', environment });
    return id;
  };
  const prod = await app('production');
  const staging = await app('staging');
  const preview = await app('pr-7');
  const token = await createToken(api.db, org, { scope: 'read' });
  await api.db.update(tokens).set({ environments: 'pr-*' }).where(eq(tokens.orgId, org));
  const record = (appId: string | null, type: string, message: string, data: Record<string, unknown> = {}) => api.events.record({ orgId: org, appId, type, message, data });
  await record(prod, 'deploy.started', 'production deploy');
  await record(staging, 'deploy.started', 'staging deploy');
  await record(null, 'server.started', 'a system event');
  await record(null, 'environment.created', 'staging made', { environment: 'staging' });
  await record(null, 'environment.created', 'pr-7 made', { environment: 'pr-7' });
  await record(preview, 'deploy.started', 'preview deploy');
  const last = await record(null, 'environment.expiring', 'pr-7 expires soon', { environment: 'pr-7' });
  const headers = { authorization: `Bearer ${token}`, 'pier-env': 'pr-7' };

  const res = await api.app.request('/v1/events?limit=100', { headers });
  assert.equal(res.status, 200, await res.clone().text());
  const seen = ((await res.json()) as { events: { message: string }[] }).events.map((e) => e.message);
  assert.deepEqual(seen, ['pr-7 made', 'preview deploy', 'pr-7 expires soon']);

  const system = await api.app.request('/v1/events?system=true', { headers });
  assert.equal(system.status, 403);
  assert.equal(((await system.json()) as { error: { code: string } }).error.code, 'E_FORBIDDEN');
  const byId = await api.app.request(`/v1/events?app=${prod}`, { headers });
  assert.equal(byId.status, 404, 'production’s app, named by its id, is not found');
  assert.equal((await api.app.request(`/v1/events?app=${preview}`, { headers })).status, 200);

  // The stream sends the same events, and nothing else, up to the last one.
  const abort = new AbortController();
  t.after(() => abort.abort());
  const stream = await api.app.request('/v1/events/stream', { headers, signal: abort.signal });
  assert.equal(stream.status, 200);
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  for (let i = 0; i < 50 && !text.includes(`id: ${last.id}\n`); i++) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  await reader.cancel();
  const messages = [...text.matchAll(/"message":"([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(messages, ['pr-7 made', 'preview deploy', 'pr-7 expires soon']);
});
