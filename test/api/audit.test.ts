// The audit trail: a call that changes something is an audit.request event with the token's id
// and name, the client's address, the route, the app, the arguments (secrets left out), the
// status and error code, and the time it took; reads and edge reports are not audited.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventView } from '../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../support/test-api.js';

interface AuditData {
  kind: string;
  token: { id: string; name: string | null; scope: string };
  source: string;
  route: string;
  status: number;
  errorCode: string | null;
  durationMs: number;
  args: Record<string, unknown>;
}

test('changes are audited with their token, route, app, outcome and redacted arguments; reads are not', async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  await createApp(api.db, org, 'web');
  const admin = await createToken(api.db, org, { scope: 'admin' });
  const reader = await createToken(api.db, org, { scope: 'read' });

  // Refused (a read token may not scale), then made with an extra argument that names a secret.
  assert.equal((await api.request('/v1/apps/web/scale', { token: reader, body: { counts: { web: 2 } } })).status, 403);
  const odd = await api.request('/v1/apps/web/scale', { token: admin, body: { counts: { web: 2 }, password: 'hunter2' } });
  const oddCode = ((await odd.json()) as { error?: { code: string } }).error?.code ?? '';
  assert.equal((await api.request('/v1/apps/web', { token: admin })).status, 200);
  const made = await api.request('/v1/tokens', { token: admin, body: { scope: 'read', name: 'dashboard' } });
  assert.equal(made.status, 201);
  const secret = ((await made.json()) as { secret: string }).secret;

  const res = await api.request('/v1/events?type=audit.*', { token: admin });
  const trail = ((await res.json()) as { events: EventView[] }).events;
  const rows = trail.map((e) => ({ app: e.app, ...(e.data as unknown as AuditData) }));
  assert.deepEqual(
    rows.map((r) => `${r.app || '-'} ${r.kind} ${r.status} ${r.errorCode ?? ''}`.trim()),
    ['web scale 403 E_FORBIDDEN', `web scale ${odd.status} ${oddCode}`.trim(), '- token.create 201'],
    'three changes tried; the read is not in the trail',
  );
  const [refused, redacted, created] = rows;
  assert.equal(refused?.token.scope, 'read');
  assert.match(refused?.token.id ?? '', /^tok_/);
  assert.equal(refused?.route, 'POST /v1/apps/:app/scale');
  assert.ok(typeof refused?.durationMs === 'number' && refused.durationMs >= 0);
  assert.ok(refused?.source, 'the source address is there (unknown in-process)');
  assert.equal(redacted?.args.password, '(redacted)');
  assert.equal(created?.args.name, 'dashboard');
  const all = JSON.stringify(trail);
  assert.doesNotMatch(all, /hunter2/);
  assert.ok(!all.includes(secret), "a new token's secret is never in the trail");

  // The app's own trail (pier audit --app web).
  const own = await api.request('/v1/events?type=audit.*&app=web', { token: admin });
  assert.equal(((await own.json()) as { events: EventView[] }).events.length, 2);
});

test("a token's last use is kept and shown by GET /v1/tokens", async (t) => {
  const api = await createTestApi(t);
  const org = await createOrg(api.db, 'acme');
  const admin = await createToken(api.db, org, { scope: 'admin' });
  const before = (await (await api.request('/v1/tokens', { token: admin })).json()) as { tokens: { lastUsedAt: string | null }[] };
  // The listing's own request marked it used; the write goes out after the answer.
  for (let i = 0; i < 50; i++) {
    const now = (await (await api.request('/v1/tokens', { token: admin })).json()) as { tokens: { lastUsedAt: string | null }[] };
    if (now.tokens[0]?.lastUsedAt) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`lastUsedAt stayed empty: ${JSON.stringify(before)}`);
});
