// Secrets through the HTTP API on a real database and the in-memory runtime: sealed at rest, only
// names/versions/digests out, injected into the containers' env by a new release, kept out of
// events, the audit trail and logs; a preview starts with none and gets only the keys copied.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { events, secrets } from '../../db/schema/index.js';
import type { ContainerSpec } from '../../api/runtime/runtime.js';
import { loadSecretBox } from '../../api/secret-box.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

const VALUE = 'postgres://app:s3cr3t-Valu3-9f1c@db/app';
const env = (name: string) => ({ 'pier-env': name });

test('a secret is sealed at rest, listed without its value, started into the env by a new release, and never reaches events or logs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const started: ContainerSpec[] = [];
  const cp = await createControlPlane(t, { secretBox: loadSecretBox(dir), runtime: { beforeStart: async (spec) => void started.push(spec) } });
  const first = (await (await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).json()) as { app: { id: string }; release: { version: number } };
  await cp.converge(first.app.id, async () => started.length === 1, 'v1 started');

  const set = await cp.request('/v1/apps/web/secrets', { body: { secrets: { DATABASE_URL: VALUE } } });
  assert.equal(set.status, 200, await set.clone().text());
  const setView = (await set.json()) as { changed: string[]; release: { version: number } };
  assert.deepEqual(setView.changed, ['DATABASE_URL']);
  assert.equal(setView.release.version, 2, 'a secret change is a new release');
  await cp.converge(first.app.id, async () => started.some((s) => s.env?.DATABASE_URL === VALUE), 'v2 started with the secret');

  // At rest: ciphertext only; the key file is outside the database.
  const [row] = await cp.db.select().from(secrets);
  assert.ok(row?.ciphertext && !row.ciphertext.includes('s3cr3t') && !Buffer.from(row.ciphertext, 'base64').toString('latin1').includes('s3cr3t'));

  const list = await (await cp.request('/v1/apps/web/secrets')).text();
  assert.ok(!list.includes('s3cr3t'));
  const listed = JSON.parse(list) as { secrets: { key: string; version: number; digest: string }[] };
  assert.deepEqual(listed.secrets.map((s) => [s.key, s.version]), [['DATABASE_URL', 1]]);
  assert.match(listed.secrets[0]?.digest ?? '', /^hmac-sha256:[0-9a-f]{16}$/);

  // Setting the same value again changes nothing.
  assert.deepEqual(((await (await cp.request('/v1/apps/web/secrets', { body: { secrets: { DATABASE_URL: VALUE } } })).json()) as { changed: string[] }).changed, []);

  // A preview starts with none and cannot read production's; a named copy gives it the key.
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) }, headers: env('pr-42') })).status, 201);
  const none = (await (await cp.request('/v1/apps/web/secrets', { headers: env('pr-42') })).json()) as { secrets: unknown[] };
  assert.deepEqual(none.secrets, []);
  const previewStarts = started.filter((s) => s.labels['dev.pier.environment'] === 'pr-42');
  assert.ok(previewStarts.every((s) => s.env?.DATABASE_URL === undefined));
  const noKeys = await cp.request('/v1/apps/web/secrets/copy', { body: { from: 'production', keys: [] }, headers: env('pr-42') });
  assert.equal(noKeys.status, 400);
  const copied = await cp.request('/v1/apps/web/secrets/copy', { body: { from: 'production', keys: ['DATABASE_URL'] }, headers: env('pr-42') });
  assert.equal(copied.status, 200, await copied.clone().text());

  // Nothing recorded anywhere holds the value: events (the audit trail included) and the log.
  const all = await cp.db.select().from(events);
  assert.ok(all.some((e) => e.type === 'audit.request' && (e.data as { route?: string }).route === 'POST /v1/apps/:app/secrets'), 'the call is audited');
  assert.ok(all.some((e) => e.type === 'secret.set'));
  for (const e of all) assert.ok(!JSON.stringify(e).includes('s3cr3t'), `event ${e.type} holds the value`);
  assert.ok(!JSON.stringify(cp.logs.lines).includes('s3cr3t'), 'the log holds the value');
});

test('a token bound to pr-* cannot copy secrets from production', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cp = await createControlPlane(t, { secretBox: loadSecretBox(dir) });
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) } })).status, 201);
  assert.equal((await cp.request('/v1/apps/web/secrets', { body: { secrets: { API_KEY: 'k-123456' } } })).status, 200);
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 1 }) }, headers: env('pr-5') })).status, 201);
  const { createToken } = await import('../support/test-api.js');
  const { tokens } = await import('../../db/schema/index.js');
  const token = await createToken(cp.db, cp.orgId, { scope: 'deploy' });
  await cp.db.update(tokens).set({ environments: 'pr-*' }).where(eq(tokens.scope, 'deploy'));
  const refused = await cp.request('/v1/apps/web/secrets/copy', { token, body: { from: 'production', keys: ['API_KEY'] }, headers: env('pr-5') });
  assert.equal(refused.status, 403);
  assert.equal((await cp.request('/v1/apps/web/secrets', { token })).status, 403);
});
