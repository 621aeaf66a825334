// POST /v1/builds on the real Docker engine and the real registry (docker-registry on loopback):
// a context builds, is pushed and comes back pinned by the digest the registry stored; a rebuild
// of the same context gives the same digest; each kind of failure is its own code with the fix;
// a context over the cap is 413 and leaves no file behind.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createApi } from '../../../api/app.js';
import { createAppDeleter } from '../../../api/app-deleter.js';
import { createBuildService } from '../../../api/build-service.js';
import { createDeployService } from '../../../api/deploy-service.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEdgeReports } from '../../../api/edge-reports.js';
import { createEventLog } from '../../../api/event-log.js';
import { createExternalRegistry } from '../../../api/registry/external-registry.js';
import { createLocalRegistry } from '../../../api/registry/local-registry.js';
import { createDockerBuilder } from '../../../api/runtime/docker-builder.js';
import { createTransactions } from '../../../api/transactions.js';
import { BUSYBOX_FILE, httpdDockerfile, makeContext, removeRegistryImages, tarOf } from '../../support/build-context.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';
import { createOrg, createTestApi, createToken } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { throwingRuntime } from '../../support/throwing-runtime.js';

interface BuildApi {
  dataDir: string;
  registryHost: string;
  build(tar: Buffer, query?: string): Promise<{ status: number; docs: Record<string, unknown>[] }>;
}

async function buildApi(t: TestContext, options: { limit?: number; registry?: boolean; external?: URL } = {}): Promise<BuildApi> {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const dataDir = await mkdtemp(join(tmpdir(), 'pier-builds-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const local = options.registry === false || options.external ? null : createLocalRegistry({ dir: join(dataDir, 'registry'), log });
  if (local) {
    t.after(() => local.close());
    assert.deepEqual(await local.start(), { ok: true });
  }
  const registry = options.external ? createExternalRegistry(options.external) : local;
  if (registry) {
    const host = registry.host;
    t.after(() => removeRegistryImages(host));
  }
  const runtime = throwingRuntime();
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  const deploys = createDeployService({ db, runtime, transactions, enqueue: () => {} });
  const deleter = createAppDeleter({ runtime, transactions, onDeleted: () => {} });
  const edgeReports = createEdgeReports({ db, transactions, log, enqueue: () => {} });
  const builds = createBuildService({ builder: createDockerBuilder({ socketPath: '/var/run/docker.sock' }), registry, log });
  const app = createApi({
    db,
    events,
    runtime,
    deploys,
    deleter,
    edgeReports,
    edgeFeed: createEdgeFeed({ db, log, sharedAddresses: ['127.0.0.1'] }),
    log,
    sharedAddresses: ['127.0.0.1'],
    ready: () => true,
    builds,
    buildContextLimitBytes: options.limit,
    dataDir,
  });
  const orgId = await createOrg(db, 'acme');
  const token = await createToken(db, orgId, { scope: 'deploy' });
  return {
    dataDir,
    registryHost: registry?.host ?? '',
    async build(tar, query = '') {
      const res = await app.request(`/v1/builds?app=site${query}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-tar' }, body: tar });
      const text = await res.text();
      const docs = res.headers.get('content-type')?.includes('ndjson')
        ? text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
        : [JSON.parse(text) as Record<string, unknown>];
      return { status: res.status, docs };
    },
  };
}

const last = (docs: Record<string, unknown>[]) => docs.at(-1) as Record<string, unknown> & { error?: { code: string; message: string; hint?: string; details?: unknown } };
const lines = (docs: Record<string, unknown>[]) => docs.filter((d) => d.type === 'line').map((d) => d.line as string);

test('a context builds, is pushed to the registry and comes back pinned by its digest; the same context gives the same digest', async (t) => {
  if (!(await requireDocker(t))) return;
  const api = await buildApi(t);
  const tar = await tarOf(await makeContext(t, { Dockerfile: httpdDockerfile(), busybox: BUSYBOX_FILE, 'www/index.html': 'v1\n' }));
  const first = await api.build(tar);
  assert.equal(first.status, 200);
  const built = last(first.docs);
  assert.equal(built.type, 'built', JSON.stringify(built));
  assert.match(String(built.image), new RegExp(`^${api.registryHost.replace(/\./g, '\\.')}/org_[a-z0-9]+/site@sha256:[0-9a-f]{64}$`));
  assert.equal(String(built.image).split('@')[1], built.digest);
  assert.match(String(built.contextHash), /^sha256:[0-9a-f]{64}$/);
  assert.ok(lines(first.docs).some((l) => /^Step 2\/\d+ : COPY busybox/.test(l)), 'the build output is streamed line by line');
  // The registry itself holds the manifest under that digest.
  const [repo] = String(built.image).replace(`${api.registryHost}/`, '').split('@');
  const manifest = await fetch(`http://${api.registryHost}/v2/${repo}/manifests/${String(built.digest)}`, { headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  await manifest.body?.cancel();
  assert.equal(manifest.status, 200);

  const again = await api.build(tar);
  assert.equal(last(again.docs).digest, built.digest, 'cached layers: the same image and digest');
  assert.equal(last(again.docs).contextHash, built.contextHash);
  assert.deepEqual(await readdir(join(api.dataDir, 'builds')), [], 'the uploaded context is removed after the build');
});

test('with an external registry (--registry URL) the image is pushed there and pinned by its host', async (t) => {
  if (!(await requireDocker(t))) return;
  // Another docker-registry, run by the test, stands in for a registry Pier does not run.
  const dir = await mkdtemp(join(tmpdir(), 'pier-external-registry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const external = createLocalRegistry({ dir, log: pino({ level: 'silent' }) });
  t.after(() => external.close());
  assert.deepEqual(await external.start(), { ok: true });
  const api = await buildApi(t, { external: new URL(`http://${external.host}`) });
  assert.equal(api.registryHost, external.host);
  const { docs } = await api.build(await tarOf(await makeContext(t, { Dockerfile: 'FROM scratch\nCOPY hello.txt /hello.txt\n', 'hello.txt': 'hi\n' })));
  const built = last(docs);
  assert.equal(built.type, 'built', JSON.stringify(built));
  assert.ok(String(built.image).startsWith(`${external.host}/`));
  const [repo] = String(built.image).replace(`${external.host}/`, '').split('@');
  const tags = await fetch(`http://${external.host}/v2/${repo}/tags/list`).then((r) => r.json() as Promise<{ tags: string[] }>);
  assert.equal(tags.tags.length, 1);
});

test('a failing step is E_BUILD_FAILED with the step and its last output lines', async (t) => {
  if (!(await requireDocker(t))) return;
  await ensureBusyboxImage();
  const api = await buildApi(t);
  const tar = await tarOf(await makeContext(t, { Dockerfile: 'FROM pier-test/busybox:1\nRUN echo first-line && echo second-line && exit 3\n' }));
  // (pier-test/busybox:1 is on the engine: nothing is pulled.)
  const { status, docs } = await api.build(tar);
  assert.equal(status, 200);
  const error = last(docs).error;
  assert.equal(error?.code, 'E_BUILD_FAILED', JSON.stringify(docs));
  const details = error?.details as { step: string; lastLines: string[] };
  assert.match(details.step, /^Step 2\/\d+ : RUN echo first-line/);
  assert.ok(details.lastLines.includes('second-line'), JSON.stringify(details));
  assert.ok(!details.lastLines.some((l) => /^ ---> |^Removing intermediate/.test(l)), 'no builder bookkeeping in the lines');
  assert.match(error?.message ?? '', /returned a non-zero code: 3/);
  assert.ok(error?.hint);
});

// The missing base image is named in the test's own registry (loopback): the engine asks it, and
// nothing leaves the machine.
const refusals: { name: string; files: (registry: string) => Record<string, string>; query?: string; code: string; message: RegExp }[] = [
  { name: 'a missing Dockerfile', files: () => ({ 'index.html': 'x' }), code: 'E_BUILD_DOCKERFILE_MISSING', message: /no Dockerfile in the build context/ },
  { name: 'a Dockerfile named elsewhere that is not there', files: () => ({ Dockerfile: 'FROM scratch\n' }), query: '&dockerfile=deploy/Dockerfile', code: 'E_BUILD_DOCKERFILE_MISSING', message: /no deploy\/Dockerfile/ },
  { name: 'a Dockerfile syntax error', files: () => ({ Dockerfile: 'FROM scratch\nCOPPY x /x\n' }), code: 'E_BUILD_DOCKERFILE_INVALID', message: /^Dockerfile:2: unknown instruction: COPPY/ },
  { name: 'a FROM image the engine cannot get', files: (registry) => ({ Dockerfile: `FROM ${registry}/pier-test/no-such-image:1\n` }), code: 'E_BUILD_BASE_IMAGE_NOT_FOUND', message: /pier-test\/no-such-image:1 is not on the engine/ },
];

for (const c of refusals) {
  test(`${c.name} is ${c.code}, with a hint`, async (t) => {
    if (!(await requireDocker(t))) return;
    const api = await buildApi(t);
    const { docs } = await api.build(await tarOf(await makeContext(t, c.files(api.registryHost))), c.query);
    const error = last(docs).error;
    assert.equal(error?.code, c.code, JSON.stringify(docs));
    assert.match(error?.message ?? '', c.message);
    assert.ok(error?.hint);
  });
}

test('a context over the limit is 413 E_BUILD_CONTEXT_TOO_LARGE, and nothing of it is kept', async (t) => {
  if (!(await requireDocker(t))) return;
  const api = await buildApi(t, { limit: 64 * 1024 });
  const tar = await tarOf(await makeContext(t, { Dockerfile: 'FROM scratch\nCOPY big /big\n', big: 'x'.repeat(200 * 1024) }));
  const { status, docs } = await api.build(tar);
  assert.equal(status, 413);
  const error = last(docs).error;
  assert.equal(error?.code, 'E_BUILD_CONTEXT_TOO_LARGE');
  assert.match(error?.hint ?? '', /dockerignore/);
  assert.deepEqual(await readdir(join(api.dataDir, 'builds')).catch(() => []), []);
});

test('a server without a registry answers 503 E_REGISTRY_UNAVAILABLE before reading the context', async (t) => {
  if (!(await requireDocker(t))) return;
  const api = await buildApi(t, { registry: false });
  const { status, docs } = await api.build(await tarOf(await makeContext(t, { Dockerfile: 'FROM scratch\n' })));
  assert.equal(status, 503);
  assert.equal(last(docs).error?.code, 'E_REGISTRY_UNAVAILABLE');
});

test('a deploy names a build only for a [build] manifest, and only as a pinned digest', async (t) => {
  const api = await createTestApi(t);
  const orgId = await createOrg(api.db, 'acme');
  const token = await createToken(api.db, orgId, { scope: 'deploy' });
  const image = `127.0.0.1:5000/${orgId}/site@sha256:${'a'.repeat(64)}`;
  const named = await api.request('/v1/deploys', { token, body: { manifest: 'app = "site"\nimage = "x"\n[processes.web]\n', build: { image } } });
  assert.equal(named.status, 400);
  assert.match(((await named.json()) as { error: { message: string } }).error.message, /only for a manifest with a \[build\] table/);
  const tagged = await api.request('/v1/deploys', { token, body: { manifest: 'app = "site"\n[build]\n[processes.web]\n', build: { image: '127.0.0.1:5000/site:latest' } } });
  assert.equal(tagged.status, 400);
  const none = await api.request('/v1/deploys', { token, body: { manifest: 'app = "site"\n[build]\n[processes.web]\n' } });
  assert.equal(none.status, 422);
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'E_BUILD_REQUIRED');
  assert.deepEqual(api.runtimeCalls, [], 'refused before any engine work');
});
