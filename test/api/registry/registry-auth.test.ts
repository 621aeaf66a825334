// An external registry with basic auth (the real docker-registry with htpasswd, on loopback):
// pushes, pulls and API calls (garbage collection) succeed with the credentials Pier keeps; a
// wrong password is E_REGISTRY_AUTH with the fix; the password shows in no log line, error,
// event, config dump or kept file other than the private one.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { inspect, promisify } from 'node:util';
import { loadConfig } from '../../../api/config.js';
import { apps, releases } from '../../../db/schema/index.js';
import { isPierError, type PierError } from '../../../api/pier-error.js';
import { createExternalRegistry } from '../../../api/registry/external-registry.js';
import { createRegistryClient } from '../../../api/registry/registry-client.js';
import { CREDENTIALS_FILE, registryCredentials } from '../../../api/registry/registry-credentials.js';
import { createRegistryGate } from '../../../api/registry/registry-gate.js';
import { createRegistryGc } from '../../../api/registry/registry-gc.js';
import { createDockerBuilder } from '../../../api/runtime/docker-builder.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { startAuthRegistry } from '../../support/auth-registry.js';
import { makeContext, removeRegistryImages, tarOf } from '../../support/build-context.js';
import { requireDocker } from '../../support/images.js';
import { captureLog } from '../../support/log-capture.js';
import { createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { Readable } from 'node:stream';

const run = promisify(execFile);
const USER = 'pier-ci';
const PASSWORD = 'S3cret-Horse-Battery-9417';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-registry-auth-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function refusal(p: Promise<unknown>): Promise<PierError> {
  const err = await p.then(() => null, (e: unknown) => e);
  assert.ok(isPierError(err), `expected a PierError, got ${String(err)}`);
  return err;
}

function assertNoPassword(text: string, where: string): void {
  assert.ok(!text.includes(PASSWORD), `the password shows in ${where}`);
  assert.ok(!text.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), `the encoded credentials show in ${where}`);
}

test('pushes, pulls and registry API calls use the kept credentials; a wrong password is E_REGISTRY_AUTH; the password is printed nowhere', async (t) => {
  if (!(await requireDocker(t))) return;
  const { host, url } = await startAuthRegistry(t, USER, PASSWORD);
  t.after(() => removeRegistryImages(host));
  const dataDir = await tempDir(t);
  const captured = captureLog('debug');

  // Given once, kept privately in the data dir, and found again without being given.
  const config = loadConfig({ PIER_REGISTRY_PASSWORD: PASSWORD }, { registry: url.href, registryUser: USER, dataDir });
  assert.equal(config.registry.kind, 'external');
  assertNoPassword(JSON.stringify(config), 'the config as JSON');
  assertNoPassword(inspect(config, { depth: 10 }), 'the config as inspected');
  captured.log.info({ config }, 'config');
  const given = config.registry.kind === 'external' ? config.registry.credentials : undefined;
  const creds = await registryCredentials(dataDir, url.origin, given);
  assert.deepEqual(creds, { username: USER, password: PASSWORD });
  assert.equal((await stat(join(dataDir, CREDENTIALS_FILE))).mode & 0o777, 0o600, 'kept where only Pier reads it');
  assert.deepEqual(await registryCredentials(dataDir, url.origin, undefined), creds, 'a later start finds them');
  assert.equal(await registryCredentials(dataDir, 'http://127.0.0.1:1', undefined), null, 'not sent to another registry');

  const ctx = await makeContext(t, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'auth test\n' });
  const builder = createDockerBuilder({ socketPath: '/var/run/docker.sock' });
  const tag = `${host}/acme/site:auth`;
  await builder.build(Readable.from(await tarOf(ctx)), { dockerfile: 'Dockerfile', args: {}, tag, labels: {} }, () => {});

  const wrong = { username: USER, password: 'not-the-password' };
  const pushRefused = await refusal(builder.push(tag, () => {}, wrong));
  assert.equal(pushRefused.code, 'E_REGISTRY_AUTH', pushRefused.message);
  assert.match(pushRefused.hint ?? '', /--registry-user .*PIER_REGISTRY_PASSWORD/);
  const none = await refusal(builder.push(tag, () => {}, null));
  assert.equal(none.code, 'E_REGISTRY_AUTH', none.message);

  const lines: string[] = [];
  const { digest } = await builder.push(tag, (l) => lines.push(l), creds);
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  const image = `${host}/acme/site@${digest}`;

  // The engine has it only from the registry now: a pull by digest needs the credentials.
  await run('docker', ['image', 'rm', '-f', tag]);
  const refusedRuntime = createDockerRuntime({ log: captured.log, registryAuth: { host, ...wrong } });
  const pullRefused = await refusal(refusedRuntime.resolveImage(image, 'missing'));
  assert.equal(pullRefused.code, 'E_REGISTRY_AUTH', pullRefused.message);
  const runtime = createDockerRuntime({ log: captured.log, registryAuth: { host, username: USER, password: PASSWORD } });
  const pulled = await runtime.resolveImage(image, 'missing');
  assert.equal(pulled.repoDigest, image);

  // The registry API (garbage collection) with and without the right password.
  const apiRefused = await refusal(createRegistryClient({ url: url.origin, credentials: wrong }).tags('acme/site'));
  assert.equal(apiRefused.code, 'E_REGISTRY_AUTH');
  assert.deepEqual(await createRegistryClient({ url: url.origin, credentials: creds }).tags('acme/site'), ['auth']);

  for (const err of [pushRefused, none, pullRefused, apiRefused]) assertNoPassword(`${err.message} ${err.hint} ${JSON.stringify(err)} ${inspect(err)}`, `error ${err.code}`);
  assertNoPassword(lines.join('\n'), 'the push output');
  assertNoPassword(JSON.stringify(captured.lines), 'the log');
  assert.ok(captured.lines.some((l) => l.msg === 'pulling image'), 'the log was captured');
});

test('on an external registry, garbage collection deletes the manifests of releases past retention (with credentials) and leaves other images alone', async (t) => {
  if (!(await requireDocker(t))) return;
  const { host, url } = await startAuthRegistry(t, USER, PASSWORD);
  t.after(() => removeRegistryImages(host));
  const { db } = await createTestDb(t);
  const orgId = await createOrg(db, 'acme');
  const repo = `${orgId.toLowerCase()}/site`;
  const creds = { username: USER, password: PASSWORD };
  const builder = createDockerBuilder({ socketPath: '/var/run/docker.sock' });
  const push = async (name: string, tag: string, content: string): Promise<string> => {
    const ctx = await makeContext(t, { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: content });
    await builder.build(Readable.from(await tarOf(ctx)), { dockerfile: 'Dockerfile', args: {}, tag: `${host}/${name}:${tag}`, labels: {} }, () => {});
    return `${host}/${name}@${(await builder.push(`${host}/${name}:${tag}`, () => {}, creds)).digest}`;
  };
  const v1 = await push(repo, 'b1', 'v1');
  const v2 = await push(repo, 'b2', 'v2');
  // The same image in a repository no Pier org owns.
  const stranger = `${host}/someone/else@${v1.split('@')[1]}`;
  await run('docker', ['tag', `${host}/${repo}:b1`, `${host}/someone/else:x`]);
  await builder.push(`${host}/someone/else:x`, () => {}, creds);
  const fresh = await push(repo, 'b3', 'pushed, never deployed');
  const [app] = await db.insert(apps).values({ id: 'app_gc', orgId, name: 'site' }).returning();
  const rel = (version: number, image: string) => ({ id: `rel_gc${version}`, appId: app!.id, version, manifest: {}, image, imageId: 'sha256:x', imageDigest: image, configHash: String(version) });
  await db.insert(releases).values([rel(1, v1), rel(2, v2)]);

  const registry = createExternalRegistry(url, creds);
  const log = captureLog('debug');
  const result = await createRegistryGc({ db, registry, gate: createRegistryGate(), keep: 1, graceMs: 0, log: log.log }).run();
  assert.deepEqual(result.removed.map((r) => [r.image, r.reason]), [[v1, 'past-retention']]);
  assert.equal(result.bytesFreed, null, "an external registry's storage is its own garbage collection's");
  const client = createRegistryClient(registry);
  const has = async (image: string) => (await client.manifestDigest(image.slice(host.length + 1).split('@')[0]!, image.split('@')[1]!)) !== null;
  assert.equal(await has(v1), false);
  assert.equal(await has(v2), true);
  assert.equal(await has(fresh), true, 'no push time to go by: a build never deployed stays on an external registry');
  assert.equal(await has(stranger), true, 'not a repository of a Pier org');
  assertNoPassword(JSON.stringify(log.lines), 'the log');
});
