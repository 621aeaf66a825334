// The HTTP API through app.request() on a real test database: readiness, authentication and
// scopes, app visibility per token, the error shape, deploy request validation, events, and
// the admin token written on first start.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { bootstrapAdmin } from '../../api/admin-bootstrap.js';
import { tokens } from '../../db/schema/index.js';
import type { ErrorBody } from '../../api/views.js';
import { createApp, createOrg, createTestApi, createToken, type TestApi } from '../support/test-api.js';

interface World {
  api: TestApi;
  orgId: string;
  alphaId: string;
  betaId: string;
  admin: string;
}

let orgs = 0;

/** A new org with apps alpha and beta and an admin token, in the shared database. */
async function world(api: TestApi): Promise<World> {
  api.setReady(true);
  api.runtimeCalls.length = 0;
  api.enqueued.length = 0;
  const orgId = await createOrg(api.db, `acme-${++orgs}`);
  const alphaId = await createApp(api.db, orgId, 'alpha');
  const betaId = await createApp(api.db, orgId, 'beta');
  const admin = await createToken(api.db, orgId, { scope: 'admin' });
  return { api, orgId, alphaId, betaId, admin };
}

/** Checks the status and the `{ error: { code, message, hint? } }` shape; returns the error. */
async function expectError(res: Response, status: number, code: string): Promise<ErrorBody['error']> {
  const body = (await res.json()) as ErrorBody;
  assert.equal(res.status, status, JSON.stringify(body));
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  return body.error;
}

async function appNames(res: Response): Promise<string[]> {
  assert.equal(res.status, 200);
  const body = (await res.json()) as { apps: { name: string }[] };
  return body.apps.map((a) => a.name);
}

const manifest = `app = "alpha"
image = "local/echo:1"

[processes.web]

[[endpoints]]
process = "web"
port = 9000
target = 5000
`;

test('the HTTP API, on one database with an org per case', async (t) => {
  const shared = await createTestApi(t);

  await t.test('/healthz answers when ready, reports each dependency, and 503 E_NOT_READY before, without a token', async () => {
    const { api } = await world(shared);
    const res = await api.request('/healthz');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { ok: boolean; status: string; dependencies: Record<string, { status: string; error?: string }> };
    // The test API has a real database and no container engine (its runtime throws).
    assert.equal(body.ok, true);
    assert.equal(body.status, 'degraded');
    assert.equal(body.dependencies.database?.status, 'up');
    assert.equal(body.dependencies.docker?.status, 'down');
    assert.match(body.dependencies.docker?.error ?? '', /no container engine/);
    api.setReady(false);
    await expectError(await api.request('/healthz'), 503, 'E_NOT_READY');
  });

  await t.test('authentication: no token, a malformed header, unknown, expired and revoked tokens get 401', async () => {
    const { api, orgId } = await world(shared);

    const missing = await expectError(await api.request('/v1/apps'), 401, 'E_UNAUTHENTICATED');
    assert.deepEqual(Object.keys(missing).sort(), ['code', 'hint', 'message'], 'code, message and hint');
    assert.match(missing.hint ?? '', /Authorization: Bearer/);

    const basic = await api.app.request('/v1/apps', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    await expectError(basic, 401, 'E_UNAUTHENTICATED');

    const unknown = await expectError(await api.request('/v1/apps', { token: 'pier_not-a-real-token' }), 401, 'E_UNAUTHENTICATED');
    assert.ok(unknown.hint);

    const expired = await createToken(api.db, orgId, { scope: 'admin', expiresAt: new Date(Date.now() - 1_000) });
    await expectError(await api.request('/v1/apps', { token: expired }), 401, 'E_UNAUTHENTICATED');
    const revoked = await createToken(api.db, orgId, { scope: 'admin', revokedAt: new Date() });
    await expectError(await api.request('/v1/apps', { token: revoked }), 401, 'E_UNAUTHENTICATED');

    // Every /v1 route is behind authentication, including unknown ones.
    await expectError(await api.request('/v1/no-such-route'), 401, 'E_UNAUTHENTICATED');
  });

  await t.test('scopes: an edge token may read the edge config but not apps; a read token may not deploy', async () => {
    const { api, orgId } = await world(shared);
    const edge = await createToken(api.db, orgId, { scope: 'edge' });
    const forbidden = await expectError(await api.request('/v1/apps', { token: edge }), 403, 'E_FORBIDDEN');
    assert.match(forbidden.message, /"edge".*"read"/);
    assert.ok(forbidden.hint);
    await expectError(await api.request('/v1/apps/alpha/events', { token: edge }), 403, 'E_FORBIDDEN');
    const config = await api.request('/v1/edge/config', { token: edge });
    assert.equal(config.status, 200);
    assert.deepEqual(((await config.json()) as { endpoints: unknown[] }).endpoints, []);

    const read = await createToken(api.db, orgId, { scope: 'read' });
    assert.deepEqual(await appNames(await api.request('/v1/apps', { token: read })), ['alpha', 'beta']);
    await expectError(await api.request('/v1/edge/config', { token: read }), 403, 'E_FORBIDDEN');
    await expectError(await api.request('/v1/deploys', { token: read, body: { manifest } }), 403, 'E_FORBIDDEN');
    assert.deepEqual(api.runtimeCalls, [], 'refused before reaching the runtime');
  });

  await t.test('the edge config is for org-wide edge and admin tokens: a token bound to one app gets 403, whatever its scope', async () => {
    const { api, orgId, alphaId } = await world(shared);
    for (const scope of ['admin', 'edge'] as const) {
      const bound = await createToken(api.db, orgId, { scope, appId: alphaId });
      for (const path of ['/v1/edge/config', '/v1/edge/watch']) {
        const err = await expectError(await api.request(path, { token: bound }), 403, 'E_FORBIDDEN');
        assert.match(err.message, /bound to one app/, `${scope} ${path}`);
        assert.match(err.hint ?? '', /--scope edge/);
      }
    }
    const orgWide = await createToken(api.db, orgId, { scope: 'admin' });
    assert.equal((await api.request('/v1/edge/config', { token: orgWide })).status, 200);
  });

  await t.test('a token bound to one app sees only that app and gets E_APP_NOT_FOUND for the others', async () => {
    const { api, orgId, alphaId, admin } = await world(shared);
    const bound = await createToken(api.db, orgId, { scope: 'deploy', appId: alphaId });

    assert.deepEqual(await appNames(await api.request('/v1/apps', { token: bound })), ['alpha']);
    assert.deepEqual(await appNames(await api.request('/v1/apps', { token: admin })), ['alpha', 'beta']);

    const alpha = await api.request('/v1/apps/alpha', { token: bound });
    assert.equal(alpha.status, 200);
    assert.equal(((await alpha.json()) as { app: { name: string } }).app.name, 'alpha');

    const beta = await expectError(await api.request('/v1/apps/beta', { token: bound }), 404, 'E_APP_NOT_FOUND');
    const missing = await expectError(await api.request('/v1/apps/gamma', { token: bound }), 404, 'E_APP_NOT_FOUND');
    assert.equal(beta.message.replace('beta', 'X'), missing.message.replace('gamma', 'X'), 'an app it may not see reads like one that does not exist');
    for (const path of ['/v1/apps/beta/events', '/v1/apps/beta/releases', '/v1/apps/beta/instances', '/v1/apps/beta/endpoints']) {
      await expectError(await api.request(path, { token: bound }), 404, 'E_APP_NOT_FOUND');
    }
    const other = await api.request('/v1/apps/beta', { token: admin });
    assert.equal(other.status, 200, 'beta exists');

    // Deploying another app is refused the same way, before any image is resolved.
    await expectError(await api.request('/v1/deploys', { token: bound, body: { manifest: manifest.replace('"alpha"', '"beta"') } }), 404, 'E_APP_NOT_FOUND');
    await expectError(await api.request('/v1/deploys', { token: bound, body: { manifest: manifest.replace('"alpha"', '"gamma"') } }), 404, 'E_APP_NOT_FOUND');
    assert.deepEqual(api.runtimeCalls, []);
    assert.deepEqual(await appNames(await api.request('/v1/apps', { token: admin })), ['alpha', 'beta'], 'no app was created');
  });

  await t.test('apps of another org are not found', async () => {
    const { api } = await world(shared);
    const otherOrg = await createOrg(api.db, 'globex');
    await createApp(api.db, otherOrg, 'omega');
    const outsider = await createToken(api.db, otherOrg, { scope: 'admin' });
    assert.deepEqual(await appNames(await api.request('/v1/apps', { token: outsider })), ['omega']);
    await expectError(await api.request('/v1/apps/alpha', { token: outsider }), 404, 'E_APP_NOT_FOUND');
  });

  await t.test('an unknown route is 404 E_ROUTE_NOT_FOUND naming the method and path', async () => {
    const { api, admin } = await world(shared);
    const err = await expectError(await api.request('/v1/nothing/here', { token: admin }), 404, 'E_ROUTE_NOT_FOUND');
    assert.match(err.message, /GET \/v1\/nothing\/here/);
    await expectError(await api.request('/elsewhere'), 404, 'E_ROUTE_NOT_FOUND');
    await expectError(await api.request('/v1/apps', { token: admin, method: 'DELETE' }), 404, 'E_ROUTE_NOT_FOUND');
  });

  await t.test('POST /v1/deploys rejects bad JSON with 400 and a bad request with the fields named', async () => {
    const { api, admin } = await world(shared);
    await expectError(await api.request('/v1/deploys', { token: admin, rawBody: '{"manifest": ' }), 400, 'E_BAD_REQUEST');
    const err = await expectError(await api.request('/v1/deploys', { token: admin, body: { file: 3 } }), 400, 'E_BAD_REQUEST');
    const paths = (err.details as { path: string }[]).map((d) => d.path).sort();
    assert.deepEqual(paths, ['file', 'manifest']);
    assert.deepEqual(api.runtimeCalls, []);
  });

  await t.test('POST /v1/deploys with an invalid manifest is 422 E_MANIFEST_INVALID listing every problem', async () => {
    const { api, admin } = await world(shared);
    const bad = manifest.replace('"alpha"', '"Alpha"').replace('port = 9000', 'port = 70000').replace('process = "web"', 'process = "api"');
    const err = await expectError(await api.request('/v1/deploys', { token: admin, body: { manifest: bad, file: 'deploy/pier.toml' } }), 422, 'E_MANIFEST_INVALID');
    assert.ok(err.hint);
    const problems = err.details as { path: string; message: string }[];
    assert.deepEqual(problems.map((p) => p.path).sort(), ['app', 'endpoints[0].port', 'endpoints[0].process']);
    assert.match(err.message, /deploy\/pier\.toml:\d+:\d+: endpoints\[0\]\.port: /);

    const toml = await expectError(await api.request('/v1/deploys', { token: admin, body: { manifest: 'app = \n' } }), 422, 'E_MANIFEST_INVALID');
    const [problem] = toml.details as { line: number; column: number }[];
    assert.equal(problem?.line, 1);

    const asObject = await expectError(
      await api.request('/v1/deploys', { token: admin, body: { manifest: { app: 'alpha', image: 'x', processes: { web: {} }, extra: 1 } } }),
      422,
      'E_MANIFEST_INVALID',
    );
    assert.deepEqual(asObject.details, [{ path: '', message: 'unknown key "extra"' }]);
    assert.deepEqual(api.runtimeCalls, []);
    assert.deepEqual(api.enqueued, []);
  });

  await t.test('an unexpected error is 500 E_INTERNAL without its own message', async () => {
    const { api, admin } = await world(shared);
    const err = await expectError(await api.request('/v1/deploys', { token: admin, body: { manifest } }), 500, 'E_INTERNAL');
    assert.deepEqual(api.runtimeCalls, ['resolveImage']);
    assert.doesNotMatch(err.message, /runtime\.resolveImage/);
    assert.deepEqual(api.enqueued, [], 'nothing was handed to the scheduler');
  });

  await t.test('GET /v1/apps/:app/events lists the app’s events in order and resumes after an id', async () => {
    const { api, orgId, alphaId, betaId, admin } = await world(shared);
    const ids: number[] = [];
    for (const [appId, type] of [[alphaId, 'one'], [betaId, 'other app'], [alphaId, 'two'], [alphaId, 'three']] as const) {
      const e = await api.events.record({ orgId, appId, type, reason: 'test', message: `event ${type}` });
      if (appId === alphaId) ids.push(e.id);
    }
    const list = async (query: string) => {
      const res = await api.request(`/v1/apps/alpha/events${query}`, { token: admin });
      assert.equal(res.status, 200);
      return ((await res.json()) as { events: { id: number; type: string }[] }).events;
    };

    assert.deepEqual((await list('')).map((e) => e.type), ['one', 'two', 'three']);
    assert.deepEqual((await list(`?after=${ids[0]}`)).map((e) => e.type), ['two', 'three']);
    assert.deepEqual((await list(`?after=${ids[1]}`)).map((e) => e.id), [ids[2]]);
    assert.deepEqual(await list(`?after=${ids[2]}`), []);
    assert.deepEqual((await list('?after=0&limit=2')).map((e) => e.type), ['one', 'two']);
    assert.deepEqual((await list('?type=three')).map((e) => e.type), ['three']);

    for (const bad of ['?after=-1', '?after=abc', '?limit=0']) {
      await expectError(await api.request(`/v1/apps/alpha/events${bad}`, { token: admin }), 400, 'E_BAD_REQUEST');
    }
  });

  await t.test("bootstrapAdmin leaves a private admin token, writes the CLI config only when there is none, and keeps the token on the next start", async (t) => {
    const api = shared;
    const dir = await mkdtemp(join(tmpdir(), 'pier-bootstrap-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'data');
    const cliConfigFile = join(dir, 'config', 'pier', 'config.json');

    const first = await bootstrapAdmin({ db: api.db, dataDir, cliConfigFile, apiUrl: 'http://127.0.0.1:7700' });
    assert.equal(first.created, true);
    assert.equal(first.cliConfig, 'written');
    assert.equal(first.tokenFile, join(dataDir, 'admin-token'));
    const token = (await readFile(first.tokenFile, 'utf8')).trim();
    assert.match(token, /^pier_\S+$/);
    assert.equal((await stat(first.tokenFile)).mode & 0o777, 0o600);
    assert.equal((await stat(cliConfigFile)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(cliConfigFile, 'utf8')), { apiUrl: 'http://127.0.0.1:7700', token });

    const res = await api.request('/v1/apps', { token });
    assert.equal(res.status, 200, 'the token is an admin token of the default org');
    assert.deepEqual(await res.json(), { apps: [], next_cursor: null });

    // The config holds this server's own token: only the API address it moved to is updated.
    const second = await bootstrapAdmin({ db: api.db, dataDir, cliConfigFile, apiUrl: 'http://127.0.0.1:7701' });
    assert.deepEqual(second, { ...first, created: false, cliConfig: 'updated' });
    assert.equal((await readFile(first.tokenFile, 'utf8')).trim(), token);
    assert.deepEqual(JSON.parse(await readFile(cliConfigFile, 'utf8')), { apiUrl: 'http://127.0.0.1:7701', token });
    assert.equal((await bootstrapAdmin({ db: api.db, dataDir, cliConfigFile, apiUrl: 'http://127.0.0.1:7701' })).cliConfig, 'unchanged');
    const admins = await api.db.select().from(tokens).where(eq(tokens.orgId, first.orgId));
    assert.equal(admins.length, 1, 'no second admin token');

    // A token the database does not know (e.g. a new database) is replaced, in the config too.
    await api.db.update(tokens).set({ revokedAt: new Date() }).where(eq(tokens.orgId, first.orgId));
    const third = await bootstrapAdmin({ db: api.db, dataDir, cliConfigFile, apiUrl: 'http://127.0.0.1:7701' });
    assert.equal(third.created, true);
    assert.equal(third.cliConfig, 'updated');
    assert.equal(third.orgId, first.orgId);
    const replaced = (await readFile(first.tokenFile, 'utf8')).trim();
    assert.notEqual(replaced, token);
    assert.equal((await api.request('/v1/apps', { token: replaced })).status, 200);
    assert.equal((await api.request('/v1/apps', { token })).status, 401);
    assert.deepEqual(JSON.parse(await readFile(cliConfigFile, 'utf8')), { apiUrl: 'http://127.0.0.1:7701', token: replaced });
  });

  await t.test("bootstrapAdmin leaves someone else's CLI config alone, byte for byte", async (t) => {
    const api = shared;
    const dir = await mkdtemp(join(tmpdir(), 'pier-bootstrap-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const cliConfigFile = join(dir, 'config', 'pier', 'config.json');
    await mkdir(dirname(cliConfigFile), { recursive: true });
    const theirs = `${JSON.stringify({ apiUrl: 'https://pier.example.com', token: 'pier_theirs', output: 'json' })}\n`;
    await writeFile(cliConfigFile, theirs);

    for (const apiUrl of ['http://127.0.0.1:7700', 'http://127.0.0.1:7701']) {
      const result = await bootstrapAdmin({ db: api.db, dataDir: join(dir, 'data'), cliConfigFile, apiUrl });
      assert.equal(result.cliConfig, 'kept');
      assert.equal(await readFile(cliConfigFile, 'utf8'), theirs);
    }
    // Not JSON (hand-edited): kept as well.
    await writeFile(cliConfigFile, '# mine\n');
    assert.equal((await bootstrapAdmin({ db: api.db, dataDir: join(dir, 'data'), cliConfigFile, apiUrl: 'http://127.0.0.1:7700' })).cliConfig, 'kept');
    assert.equal(await readFile(cliConfigFile, 'utf8'), '# mine\n');
  });
});
