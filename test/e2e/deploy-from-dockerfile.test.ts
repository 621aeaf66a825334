// Deploying from source, end to end: a real `pier server` with its own registry (docker-registry
// on loopback), the real CLI packing a context that holds a Dockerfile `FROM scratch` with busybox
// copied in, the build on the real engine, the push, the release pinned by digest, bytes through
// the edge; a redeploy after a change, a rollback to the first digest, `pier build` giving the
// same digest for the same context, `describe release` saying how each release was built (context
// hash, Dockerfile, build arg names, never their values), and a failed build that exits 3 and
// changes nothing.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import Docker from 'dockerode';
import type { StatusView } from '../../api/views.js';
import { BUSYBOX_FILE, httpdDockerfile, removeRegistryImages, writeFiles } from '../support/build-context.js';
import { removeAppContainers } from '../support/containers.js';
import { requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { freePortOnBoth } from '../support/tcp-client.js';

async function status(server: PierServer): Promise<StatusView> {
  const r = await runPier(['status', '--app', 'site', '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusView;
}

/** GET through the edge until it answers `want` (bounded: the new instance may still be starting). */
async function serves(port: number, path: string, want: string | number): Promise<void> {
  let last = '';
  for (let i = 0; i < 60; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (typeof want === 'number' ? res.status === want : body === want) return;
      last = `${res.status} ${body}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`port ${port}${path} never answered ${JSON.stringify(want)}; last: ${last}`);
}

test('an app deploys from its Dockerfile through the registry, redeploys after a change and rolls back to the first digest', async (t) => {
  if (!(await requireDocker(t))) return;
  const server = await startPierServer(t);
  const registryHost = `127.0.0.1:${(await readFile(join(server.dir, 'data', 'registry', 'port'), 'utf8')).trim()}`;
  // Containers first: an image a container still uses cannot be removed.
  let appId: string | undefined;
  t.after(async () => {
    if (appId) await removeAppContainers(appId);
    await removeRegistryImages(registryHost);
  });
  const port = await freePortOnBoth();
  const site = join(server.dir, 'src', 'site');
  await writeFiles(site, {
    'pier.toml': `app = "site"\n\n[build]\ncontext = "."\nignore = ["notes.txt"]\nargs = { GREETING = "secret-value" }\n\n[processes.web]\n\n[[endpoints]]\nprocess = "web"\nport = ${port}\ntarget = 8080\n`,
    Dockerfile: httpdDockerfile('ARG GREETING\n'),
    '.dockerignore': '**/*.log\n',
    busybox: BUSYBOX_FILE,
    'www/index.html': 'v1\n',
    'www/secret.log': 'left out by .dockerignore\n',
    'notes.txt': 'left out by [build] ignore\n',
  });

  // Run from another folder: the context is found relative to the manifest file.
  const first = await runPier(['deploy', '-c', 'src/site/pier.toml'], server.env, { cwd: server.dir, timeoutMs: 180_000 });
  assert.equal(first.code, 0, `deploy failed:\n${first.stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  assert.match(first.stderr, /Step 2\/\d+ : COPY busybox \/bin\/busybox/, 'the build output is printed as it runs');
  assert.match(first.stderr, /uploaded \d[^\n]* in \d+\.\d s/, 'the upload says its size and how long it took');
  const v1 = await status(server);
  appId = v1.app.id;
  const digest1 = v1.release?.imageDigest ?? '';
  assert.match(digest1, new RegExp(`^${registryHost.replace(/\./g, '\\.')}/org_[a-z0-9]+/site@sha256:[0-9a-f]{64}$`));
  assert.equal(v1.release?.image, digest1, 'the release pins the pushed digest');
  await serves(port, '/index.html', 'v1\n');
  await serves(port, '/secret.log', 404);

  // How it was built, without the build args' values.
  const described = await runPier(['describe', 'release', 'site/1', '--json'], server.env);
  assert.equal(described.code, 0, described.stderr);
  const release1 = JSON.parse(described.stdout) as { imageDigest: string; build: { contextHash: string; dockerfile: string; target: string | null; argKeys: string[]; builder: string } };
  assert.equal(release1.imageDigest, digest1);
  assert.match(release1.build.contextHash, /^sha256:[0-9a-f]{64}$/);
  // The builder as the image records it: the engine's own version.
  const engine = await new Docker().version();
  assert.deepEqual(
    { ...release1.build, contextHash: '' },
    { contextHash: '', dockerfile: 'Dockerfile', target: null, argKeys: ['GREETING'], builder: `Docker Engine ${engine.Version}, classic builder` },
  );
  assert.doesNotMatch(described.stdout, /secret-value/);
  const readable = await runPier(['describe', 'release', '1', '--app', 'site'], server.env);
  assert.equal(readable.code, 0, readable.stderr);
  assert.match(readable.stdout, new RegExp(`contextHash: ${release1.build.contextHash}`));

  await writeFiles(site, { 'www/index.html': 'v2\n' });
  const second = await runPier(['deploy', '-c', join(site, 'pier.toml')], server.env, { timeoutMs: 180_000 });
  assert.equal(second.code, 0, second.stderr);
  const v2 = await status(server);
  assert.equal(v2.release?.version, 2);
  assert.notEqual(v2.release?.imageDigest, digest1);
  await serves(port, '/index.html', 'v2\n');

  // The same context builds to the same digest (layer cache), without deploying.
  const built = await runPier(['build', '-c', join(site, 'pier.toml'), '--json'], server.env, { timeoutMs: 180_000 });
  assert.equal(built.code, 0, built.stderr);
  const events = built.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; image?: string });
  assert.ok(events.some((e) => e.type === 'line'));
  assert.deepEqual(events.at(-1)?.type, 'built');
  assert.equal(events.at(-1)?.image, v2.release?.imageDigest);
  assert.equal((await status(server)).release?.version, 2, 'pier build deploys nothing');

  const rollback = await runPier(['rollback', '--app', 'site'], server.env, { timeoutMs: 120_000 });
  assert.equal(rollback.code, 0, rollback.stderr);
  const v3 = await status(server);
  assert.equal(v3.release?.version, 3);
  assert.equal(v3.release?.imageDigest, digest1, 'the rollback runs the first digest');
  const release3 = JSON.parse((await runPier(['describe', 'release', 'site/3', '--json'], server.env)).stdout) as { build: unknown; rollbackOf: number };
  assert.deepEqual(release3.build, release1.build, 'a rollback keeps how the image was built');
  assert.equal(release3.rollbackOf, 1);
  await serves(port, '/index.html', 'v1\n');

  // A failing step: exit 3 with the step and its output; the rolled-back release keeps serving.
  await writeFiles(site, { Dockerfile: httpdDockerfile('RUN ["/bin/busybox", "sh", "-c", "echo about-to-fail; exit 7"]\n') });
  const broken = await runPier(['deploy', '-c', join(site, 'pier.toml')], server.env, { timeoutMs: 180_000 });
  assert.equal(broken.code, 3, broken.stderr);
  assert.match(broken.stderr, /E_BUILD_FAILED/);
  assert.match(broken.stderr, /about-to-fail/);
  assert.match(broken.stderr, /returned a non-zero code: 7/);
  const after = await status(server);
  assert.equal(after.release?.version, 3, 'no new release');
  await serves(port, '/index.html', 'v1\n');
});

test('a context over the server limit, a missing Dockerfile and a manifest without [build] each end with their code, and nothing is deployed', async (t) => {
  if (!(await requireDocker(t))) return;
  const server = await startPierServer(t, {}, { args: ['--build-context-limit', '64KiB'] });
  const site = join(server.dir, 'site');
  await writeFiles(site, { 'pier.toml': 'app = "big"\n[build]\n[processes.web]\n', Dockerfile: 'FROM scratch\nCOPY big /big\n', big: 'x'.repeat(1024 * 1024) });
  const big = await runPier(['deploy', '-c', join(site, 'pier.toml')], server.env, { timeoutMs: 60_000 });
  assert.equal(big.code, 1, big.stderr);
  assert.match(big.stderr, /E_BUILD_CONTEXT_TOO_LARGE/);
  assert.match(big.stderr, /dockerignore/);

  // Left out by .dockerignore, the big file no longer counts; the Dockerfile is gone too.
  await writeFiles(site, { '.dockerignore': 'big\n', 'pier.toml': 'app = "big"\n[build]\ndockerfile = "deploy/Dockerfile"\n[processes.web]\n' });
  const missing = await runPier(['deploy', '-c', join(site, 'pier.toml')], server.env, { timeoutMs: 60_000 });
  assert.equal(missing.code, 3, missing.stderr);
  assert.match(missing.stderr, /no deploy\/Dockerfile in the build context \(E_BUILD_DOCKERFILE_MISSING\)/);

  await writeFiles(site, { 'pier.toml': 'app = "big"\nimage = "pier-test/busybox:1"\n[processes.web]\n' });
  const nothing = await runPier(['build', '-c', join(site, 'pier.toml')], server.env);
  assert.equal(nothing.code, 2, nothing.stderr);
  assert.match(nothing.stderr, /E_NOTHING_TO_BUILD/);

  const apps = await runPier(['apps', 'list', '--json'], server.env);
  assert.equal(apps.code, 0, apps.stderr);
  assert.deepEqual((JSON.parse(apps.stdout) as { apps: unknown[] }).apps, []);
});
