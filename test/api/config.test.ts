// The server's configuration: reconcile concurrency is read once, defaults to 4, and must stay
// below the database pool's size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
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

for (const value of ['ftp://host', 'http://user:pw@host:5000', 'http://host:5000/path', 'somewhere']) {
  test(`PIER_REGISTRY=${value} is refused with E_CONFIG_INVALID saying what is accepted`, () => {
    assert.throws(() => loadConfig({ PIER_REGISTRY: value }), (err: Error & { code?: string; hint?: string }) => err.code === 'E_CONFIG_INVALID' && /--registry local/.test(err.hint ?? ''));
  });
}

test('the build context limit defaults to 512 MiB and reads sizes', () => {
  assert.equal(loadConfig({}).buildContextLimitBytes, 512 * 1024 ** 2);
  assert.equal(loadConfig({ PIER_BUILD_CONTEXT_LIMIT: '2MiB' }).buildContextLimitBytes, 2 * 1024 ** 2);
  assert.throws(() => loadConfig({ PIER_BUILD_CONTEXT_LIMIT: 'lots' }), /build context limit/);
});
