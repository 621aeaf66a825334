// The server's configuration: reconcile concurrency is read once, defaults to 4, and must stay
// below the database pool's size.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inspect } from 'node:util';
import { loadConfig, MAX_RECONCILE_CONCURRENCY } from '../../api/config.js';
import { POOL_SIZE } from '../../db/database.js';

test('PIER_RECONCILE_CONCURRENCY defaults to 4 and accepts 1 up to below the pool size', () => {
  assert.equal(loadConfig({}).reconcileConcurrency, 4);
  assert.equal(loadConfig({ PIER_RECONCILE_CONCURRENCY: '1' }).reconcileConcurrency, 1);
  assert.equal(loadConfig({ PIER_RECONCILE_CONCURRENCY: String(MAX_RECONCILE_CONCURRENCY) }).reconcileConcurrency, MAX_RECONCILE_CONCURRENCY);
  assert.ok(MAX_RECONCILE_CONCURRENCY < POOL_SIZE);
});

for (const value of ['0', '9', '2.5', 'many', '-1']) {
  test(`PIER_RECONCILE_CONCURRENCY=${value} is refused with E_CONFIG_INVALID naming the range`, () => {
    assert.throws(() => loadConfig({ PIER_RECONCILE_CONCURRENCY: value }), (err: Error & { code?: string; hint?: string }) => {
      assert.equal(err.code, 'E_CONFIG_INVALID');
      assert.match(err.message, /from 1 to 8/);
      assert.match(err.hint ?? '', /pool/);
      return true;
    });
  });
}

test('the registry setting is local under the data dir by default, off, or an external URL', () => {
  const local = loadConfig({ PIER_DATA_DIR: '/srv/pier' }).registry;
  assert.deepEqual(local, { kind: 'local', dir: '/srv/pier/registry', binary: '/usr/bin/docker-registry' });
  assert.deepEqual(loadConfig({ PIER_REGISTRY: 'off' }).registry, { kind: 'off' });
  const external = loadConfig({ PIER_REGISTRY: 'http://127.0.0.1:5000' }).registry;
  assert.equal(external.kind === 'external' ? external.url.host : null, '127.0.0.1:5000');
  assert.deepEqual(loadConfig({ PIER_REGISTRY: 'off' }, { registry: 'local', dataDir: '/d' }).registry.kind, 'local', 'the flag wins');
});

for (const value of ['ftp://host', 'http://host:5000/path', 'somewhere']) {
  test(`PIER_REGISTRY=${value} is refused with E_CONFIG_INVALID saying what is accepted`, () => {
    assert.throws(() => loadConfig({ PIER_REGISTRY: value }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /--registry local/.test(err.hint ?? ''));
  });
}

test('--registry-listen: where Pier\'s own registry listens, one address (never a wildcard), only for the local registry', () => {
  const listen = (value: string) => {
    const r = loadConfig({ PIER_REGISTRY_LISTEN: value }).registry;
    return r.kind === 'local' ? r.listen : null;
  };
  assert.equal(listen(''), undefined, 'unset: loopback (the registry\'s default)');
  assert.deepEqual(listen('10.0.0.1:5000'), { host: '10.0.0.1', port: 5000 });
  assert.deepEqual(listen('10.0.0.1'), { host: '10.0.0.1', port: 0 });
  assert.deepEqual(listen('[fd00::1]:5000'), { host: 'fd00::1', port: 5000 });
  assert.deepEqual(listen('registry.internal:0'), { host: 'registry.internal', port: 0 });
  assert.deepEqual(loadConfig({ PIER_DATA_DIR: '/d', PIER_REGISTRY_LISTEN: '10.0.0.1:1' }, { registryListen: '10.0.0.2:2' }).registry, { kind: 'local', dir: '/d/registry', binary: '/usr/bin/docker-registry', listen: { host: '10.0.0.2', port: 2 } }, 'the flag wins');
  for (const value of ['0.0.0.0:5000', '[::]:5000', '10.0.0.1:99999', '10.0.0.1:x', ':5000', 'a b:1']) {
    assert.throws(() => loadConfig({ PIER_REGISTRY_LISTEN: value }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /--registry-listen HOST:PORT/.test(err.hint ?? ''), value);
  }
  // A public address: the registry has no sign-in and allows deletes.
  for (const value of ['8.8.4.4:5000', '[2001:db8::1]:5000', '172.32.0.1']) {
    assert.throws(() => loadConfig({ PIER_REGISTRY_LISTEN: value }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /public address/.test(err.message), value);
  }
  assert.deepEqual(listen('192.168.1.5:5000'), { host: '192.168.1.5', port: 5000 });
  assert.deepEqual(listen('198.18.0.254'), { host: '198.18.0.254', port: 0 });
  assert.throws(() => loadConfig({ PIER_REGISTRY_LISTEN: '10.0.0.1:5000', PIER_REGISTRY: 'off' }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /own registry/.test(err.message));
});

test('the build context limit defaults to 512 MiB and reads sizes', () => {
  assert.equal(loadConfig({}).buildContextLimitBytes, 512 * 1024 ** 2);
  assert.equal(loadConfig({ PIER_BUILD_CONTEXT_LIMIT: '2MiB' }).buildContextLimitBytes, 2 * 1024 ** 2);
  assert.throws(() => loadConfig({ PIER_BUILD_CONTEXT_LIMIT: 'lots' }), /build context limit/);
});

test('registry credentials: a user and a password from the environment or a file, never from a URL, and never printed', async (t) => {
  const password = 'Pw-in-env-5521';
  const config = loadConfig({ PIER_REGISTRY: 'http://127.0.0.1:5000', PIER_REGISTRY_USER: 'ci', PIER_REGISTRY_PASSWORD: password });
  assert.ok(config.registry.kind === 'external' && config.registry.credentials);
  assert.equal(config.registry.credentials.username, 'ci');
  assert.equal(config.registry.credentials.password.reveal(), password);
  assert.ok(!JSON.stringify(config).includes(password) && !inspect(config, { depth: 10 }).includes(password) && !String(config.registry.credentials.password).includes(password));

  const dir = await mkdtemp(join(tmpdir(), 'pier-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'pw'), 'from-a-file\n');
  const fromFile = loadConfig({}, { registry: 'http://127.0.0.1:5000', registryUser: 'ci', registryPasswordFile: join(dir, 'pw') }).registry;
  assert.equal(fromFile.kind === 'external' ? fromFile.credentials?.password.reveal() : null, 'from-a-file', 'the trailing newline is not part of it');

  const refused = (env: NodeJS.ProcessEnv, flags: Parameters<typeof loadConfig>[1], hint: RegExp) =>
    assert.throws(() => loadConfig(env, flags), (err: Error & { code?: string; hint?: string }) => {
      assert.equal(err.code, 'E_CONFIG_INVALID');
      assert.match(err.hint ?? '', hint);
      assert.ok(!err.message.includes('hunter2') && !(err.hint ?? '').includes('hunter2'), `the password is not repeated: ${err.message}`);
      return true;
    });
  refused({ PIER_REGISTRY: 'http://ci:hunter2@127.0.0.1:5000' }, {}, /--registry-user USER and the password in PIER_REGISTRY_PASSWORD/);
  refused({ PIER_REGISTRY_PASSWORD: 'hunter2' }, { registry: 'http://127.0.0.1:5000' }, /--registry-user/);
  refused({}, { registry: 'http://127.0.0.1:5000', registryUser: 'ci' }, /PIER_REGISTRY_PASSWORD/);
  refused({ PIER_REGISTRY_PASSWORD: 'hunter2' }, { registryUser: 'ci' }, /--registry http/);
  refused({}, { registry: 'http://127.0.0.1:5000', registryUser: 'ci', registryPasswordFile: join(dir, 'missing') }, /file this user can read/);
});

test('registry garbage collection settings: keep, grace and interval, with defaults', () => {
  assert.deepEqual(loadConfig({}).registryGc, { keep: 10, graceMs: 86_400_000, intervalMs: 86_400_000 });
  assert.deepEqual(loadConfig({ PIER_REGISTRY_KEEP: '3', PIER_REGISTRY_GC_GRACE: '0s', PIER_REGISTRY_GC_INTERVAL: 'off' }).registryGc, { keep: 3, graceMs: 0, intervalMs: null });
  assert.deepEqual(loadConfig({ PIER_REGISTRY_KEEP: '3' }, { registryKeep: '5', registryGcGrace: '90m', registryGcInterval: '6h' }).registryGc, { keep: 5, graceMs: 5_400_000, intervalMs: 21_600_000 });
  for (const [env, hint] of [
    [{ PIER_REGISTRY_KEEP: '0' }, /--registry-keep/],
    [{ PIER_REGISTRY_KEEP: 'all' }, /--registry-keep/],
    [{ PIER_REGISTRY_GC_GRACE: 'off' }, /--registry-gc-grace/],
    [{ PIER_REGISTRY_GC_INTERVAL: '0s' }, /--registry-gc-interval .*or off/],
    [{ PIER_REGISTRY_GC_INTERVAL: 'daily' }, /--registry-gc-interval/],
  ] as const) {
    assert.throws(() => loadConfig(env), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && hint.test(err.hint ?? ''));
  }
});

test('the runtime is docker by default, or swarm with the other nodes\' engines by address; anything else is refused', () => {
  assert.deepEqual(loadConfig({}).runtime, { kind: 'docker' });
  assert.deepEqual(loadConfig({ PIER_RUNTIME: 'docker' }).runtime, { kind: 'docker' });
  assert.deepEqual(loadConfig({ PIER_RUNTIME: 'swarm' }).runtime, { kind: 'swarm', nodeEngines: {} });
  assert.deepEqual(loadConfig({ PIER_RUNTIME: 'docker' }, { runtime: 'swarm' }).runtime, { kind: 'swarm', nodeEngines: {} }, 'the flag wins');
  assert.deepEqual(loadConfig({ PIER_RUNTIME: 'swarm', PIER_SWARM_NODE_ENGINES: '10.0.0.2=unix:///run/n2.sock, 10.0.0.3=unix:///run/n3.sock' }).runtime, {
    kind: 'swarm',
    nodeEngines: { '10.0.0.2': '/run/n2.sock', '10.0.0.3': '/run/n3.sock' },
  });
  assert.throws(() => loadConfig({ PIER_RUNTIME: 'nomad' }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /nomad/.test(err.message) && /--runtime swarm/.test(err.hint ?? ''));
  assert.throws(() => loadConfig({ PIER_RUNTIME: 'swarm', PIER_SWARM_NODE_ENGINES: 'tcp://10.0.0.2:2375' }), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /ADDRESS=unix/.test(err.message));
});

test('the wait for edges to stop serving a deleted app\'s address: 1 min by default, a duration, or E_CONFIG_INVALID naming the variable', () => {
  assert.equal(loadConfig({}).ips.unbindWaitMs, 60_000);
  assert.equal(loadConfig({ PIER_IP_UNBIND_WAIT: '5s' }).ips.unbindWaitMs, 5_000);
  assert.throws(
    () => loadConfig({ PIER_IP_UNBIND_WAIT: 'soon' }),
    (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && /PIER_IP_UNBIND_WAIT "soon" is not a duration/.test(err.message),
  );
});
