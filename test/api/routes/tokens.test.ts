// Tokens over the API: created by an org-wide admin with the secret shown once and only its hash
// stored, listed without secrets, bound to an app, expiring, revoked.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asc, eq } from 'drizzle-orm';
import { events, idempotencyKeys, tokens } from '../../../db/schema/index.js';
import { hashTokenSecret } from '../../../api/token-secret.js';
import type { ErrorBody, TokenView } from '../../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../../support/test-api.js';

async function json<T>(res: Response, status: number): Promise<T> {
  const body = (await res.json()) as T;
  assert.equal(res.status, status, JSON.stringify(body));
  return body;
}

async function errorCode(res: Response, status: number): Promise<string> {
  return (await json<ErrorBody>(res, status)).error.code;
}

test('tokens', async (t) => {
  const api = await createTestApi(t);
  const orgId = await createOrg(api.db, 'acme');
  const alphaId = await createApp(api.db, orgId, 'alpha');
  await createApp(api.db, orgId, 'beta');
  const admin = await createToken(api.db, orgId, { scope: 'admin' });
  type Created = { token: TokenView; secret: string };

  await t.test('an admin creates a token: the secret is in the answer once, only its hash is stored', async () => {
    const { token, secret } = await json<Created>(await api.request('/v1/tokens', { token: admin, body: { scope: 'read', name: 'ci reader' } }), 201);
    assert.match(secret, /^pier_[A-Za-z0-9_-]{20,}$/);
    assert.deepEqual({ name: token.name, scope: token.scope, app: token.app, expiresAt: token.expiresAt }, { name: 'ci reader', scope: 'read', app: null, expiresAt: null });
    const [row] = await api.db.select().from(tokens).where(eq(tokens.id, token.id));
    assert.equal(row?.hash, hashTokenSecret(secret));
    assert.ok(!JSON.stringify(row).includes(secret), 'the secret itself is stored nowhere in the row');
    const current = await json<{ token: TokenView }>(await api.request('/v1/tokens/current', { token: secret }), 200);
    assert.equal(current.token.id, token.id);
    assert.equal((await api.request('/v1/apps', { token: secret })).status, 200);
  });

  await t.test('a token bound to an app sees only that app, on every route', async () => {
    const { token, secret } = await json<Created>(await api.request('/v1/tokens', { token: admin, body: { scope: 'deploy', app: 'alpha' } }), 201);
    assert.equal(token.app, 'alpha');
    assert.equal(token.name, 'deploy for alpha');
    const [row] = await api.db.select().from(tokens).where(eq(tokens.id, token.id));
    assert.equal(row?.appId, alphaId);
    const apps = await json<{ apps: { name: string }[] }>(await api.request('/v1/apps', { token: secret }), 200);
    assert.deepEqual(apps.apps.map((a) => a.name), ['alpha']);
    for (const path of ['/v1/apps/beta', '/v1/apps/beta/releases', '/v1/apps/beta/instances', '/v1/apps/beta/events', '/v1/apps/beta/describe']) {
      assert.equal(await errorCode(await api.request(path, { token: secret }), 404), 'E_APP_NOT_FOUND', path);
    }
    assert.equal((await api.request('/v1/apps/alpha/releases', { token: secret })).status, 200);
  });

  await t.test('only an org-wide admin token manages tokens', async () => {
    const reader = await createToken(api.db, orgId, { scope: 'read' });
    const boundAdmin = await createToken(api.db, orgId, { scope: 'admin', appId: alphaId });
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: reader, body: { scope: 'read' } }), 403), 'E_FORBIDDEN');
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: boundAdmin, body: { scope: 'read' } }), 403), 'E_FORBIDDEN');
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: reader }), 403), 'E_FORBIDDEN');
    assert.equal(await errorCode(await api.request('/v1/tokens/tok_x', { token: boundAdmin, method: 'DELETE' }), 403), 'E_FORBIDDEN');
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: admin, body: { scope: 'read', app: 'gamma' } }), 404), 'E_APP_NOT_FOUND');
  });

  await t.test('bad requests name the field', async () => {
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: admin, body: { scope: 'root' } }), 400), 'E_BAD_REQUEST');
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: admin, body: { scope: 'read', expiresIn: '30x' } }), 400), 'E_BAD_REQUEST');
    assert.equal(await errorCode(await api.request('/v1/tokens', { token: admin, body: { scope: 'edge', app: 'alpha' } }), 400), 'E_BAD_REQUEST');
  });

  await t.test('expiresIn sets when the token stops working', async () => {
    const before = Date.now();
    const { token } = await json<Created>(await api.request('/v1/tokens', { token: admin, body: { scope: 'read', expiresIn: '30d' } }), 201);
    const expires = Date.parse(token.expiresAt ?? '');
    assert.ok(expires >= before + 30 * 86_400_000 && expires <= Date.now() + 30 * 86_400_000, token.expiresAt ?? 'no expiry');
  });

  await t.test('the list holds no secrets or hashes, and a revoked token stops working at once', async () => {
    const { token, secret } = await json<Created>(await api.request('/v1/tokens', { token: admin, body: { scope: 'read', name: 'to revoke' } }), 201);
    const listed = await json<{ tokens: TokenView[]; next_cursor: string | null }>(await api.request('/v1/tokens', { token: admin }), 200);
    assert.ok(listed.tokens.some((x) => x.id === token.id));
    assert.ok(!JSON.stringify(listed).includes('pier_') && !JSON.stringify(listed).includes(hashTokenSecret(secret)));
    const revoked = await json<{ token: TokenView }>(await api.request(`/v1/tokens/${token.id}`, { token: admin, method: 'DELETE' }), 200);
    assert.ok(revoked.token.revokedAt);
    assert.equal(await errorCode(await api.request('/v1/apps', { token: secret }), 401), 'E_UNAUTHENTICATED');
    assert.equal((await api.request(`/v1/tokens/${token.id}`, { token: admin, method: 'DELETE' })).status, 200, 'revoking again changes nothing');
    const after = await json<{ tokens: TokenView[] }>(await api.request('/v1/tokens', { token: admin }), 200);
    assert.ok(!after.tokens.some((x) => x.id === token.id));
    assert.equal(await errorCode(await api.request('/v1/tokens/tok_nope', { token: admin, method: 'DELETE' }), 404), 'E_TOKEN_NOT_FOUND');
  });

  await t.test('a new token is never kept as an Idempotency-Key answer: each call makes a new one', async () => {
    const send = () => api.app.request('/v1/tokens', {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'idempotency-key': 'token-key-1' },
      body: JSON.stringify({ scope: 'read' }),
    });
    const first = await json<Created>(await send(), 201);
    const second = await json<Created>(await send(), 201);
    assert.notEqual(first.secret, second.secret);
    assert.deepEqual(await api.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.key, 'token-key-1')), []);
  });

  await t.test('creating and revoking a token each record an audit event with it (the secret in neither)', async () => {
    const { token, secret } = await json<Created>(await api.request('/v1/tokens', { token: admin, body: { scope: 'exec', app: 'alpha', name: 'audited' } }), 201);
    await api.request(`/v1/tokens/${token.id}`, { token: admin, method: 'DELETE' });
    await api.request(`/v1/tokens/${token.id}`, { token: admin, method: 'DELETE' });
    const rows = (await api.db.select().from(events).where(eq(events.orgId, orgId)).orderBy(asc(events.id))).filter((e) => e.data.tokenId === token.id);
    assert.deepEqual(rows.map((e) => [e.type, e.appId]), [['token.created', alphaId], ['token.revoked', alphaId]], 'one revoked event, however often it is revoked');
    assert.ok(!JSON.stringify(rows).includes(secret));
  });
});
