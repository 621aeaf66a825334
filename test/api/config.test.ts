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
