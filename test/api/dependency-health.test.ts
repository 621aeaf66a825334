// The /healthz probes' logic with probes that are plain functions: a result is reused for the
// TTL, a probe that hangs is reported down after the timeout and never stacked, a throw (even a
// synchronous one) is "down" with its message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDependencyHealth } from '../../api/dependency-health.js';

test('a probe runs at most once per TTL, and concurrent checks share it', async () => {
  let calls = 0;
  let now = 1_000;
  const health = createDependencyHealth({ probes: { db: async () => void calls++ }, ttlMs: 2_000, now: () => now });
  const [a, b] = await Promise.all([health.check(), health.check()]);
  assert.equal(calls, 1);
  assert.equal(a.db?.status, 'up');
  assert.deepEqual(a, b);
  now += 1_999;
  await health.check();
  assert.equal(calls, 1, 'cached within the TTL');
  now += 1;
  await health.check();
  assert.equal(calls, 2, 'probed again after it');
});

test('a hanging probe is down after the timeout, and is not started again while it hangs', async (t) => {
  // The timeout's timer does not hold the process open (a server has its sockets for that).
  const keepAlive = setInterval(() => undefined, 1_000);
  t.after(() => clearInterval(keepAlive));
  let calls = 0;
  let now = 0;
  const health = createDependencyHealth({ probes: { docker: () => (calls++, new Promise(() => undefined)) }, ttlMs: 0, timeoutMs: 20, now: () => now });
  const [first] = await Promise.all([health.check(), health.check(), health.check()]);
  assert.equal(calls, 1, 'one probe for three checks');
  assert.equal(first?.docker?.status, 'down');
  assert.match(first?.docker?.error ?? '', /no answer within 20 ms/);
  now += 10_000;
  await health.check();
  assert.equal(calls, 2, 'a new probe once the timed-out one was reported');
});

test('a probe that throws, synchronously or not, is down with the reason', async () => {
  const health = createDependencyHealth({
    probes: {
      sync: () => {
        throw new Error('no engine');
      },
      async: async () => {
        throw Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });
      },
    },
  });
  const r = await health.check();
  assert.deepEqual([r.sync?.status, r.sync?.error], ['down', 'no engine']);
  assert.deepEqual([r.async?.status, r.async?.error], ['down', 'connect failed (ECONNREFUSED)']);
});
