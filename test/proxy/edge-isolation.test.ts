// One endpoint that cannot bind never freezes the others (issue 9): another program (socat) holds
// its port, the rest of the snapshot and of later snapshots applies and serves, the failed
// endpoint is reported with the system error and retried until the port is free (then it serves
// without a new snapshot), and a snapshot that drops it stops the retries.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { squatPort } from '../support/squatter.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];
/** Short retries so the test waits little; the backoff doubles as in production. */
const RETRY = { bindRetryBaseMs: 50, bindRetryMaxMs: 200 };

forEachIo((io) => {
  test('a port held by another program fails its endpoint alone; the rest applies now and later, and it serves once the port is free', async (t) => {
    const echo = await startEchoBackend(t);
    const [pa, pb, held] = [await freePort(), await freePort(), await freePort()];
    const squatter = await squatPort(t, held);
    let changes = 0;
    const edge = createTestEdge(t, io, { ...RETRY, onStateChange: () => changes++ });

    const v1: EdgeConfig = {
      version: 1,
      endpoints: [
        endpoint({ id: 'ep_a', bind: lo(pa), backends: [echo], options: { name: 'a/9000', revision: 3 } }),
        endpoint({ id: 'ep_s', bind: lo(held), backends: [echo], options: { name: 'squat/21030', revision: 1 } }),
      ],
    };
    const result = await edge.apply(v1);
    assert.ok(result.ok && result.applied, JSON.stringify(result));
    const [a, s] = result.endpoints;
    assert.deepEqual(a, { id: 'ep_a', name: 'a/9000', revision: 3, state: 'serving', listeners: [{ address: '127.0.0.1', port: pa, state: 'bound' }] });
    assert.equal(s?.state, 'failed');
    assert.equal(s?.revision, 1);
    const failedListener = s?.listeners[0];
    assert.equal(failedListener?.state, 'failed');
    assert.equal(failedListener?.error?.code, 'EADDRINUSE');
    assert.match(failedListener?.error?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${held}.*address already in use`));
    assert.ok(Date.parse(failedListener?.retryAt ?? '') > 0, 'the next attempt is announced');

    assert.equal(edge.status().version, 1);
    assert.equal((await exchange('127.0.0.1', pa, 'a serves')).toString(), 'a serves');
    assert.equal((await exchange('127.0.0.1', held, 'x')).toString(), 'squatter\n', 'the other program still has the port');

    // A later snapshot applies too, while the failed endpoint keeps being retried.
    const v2: EdgeConfig = { version: 2, endpoints: [...v1.endpoints, endpoint({ id: 'ep_b', bind: lo(pb), backends: [echo] })] };
    const second = await edge.apply(v2);
    assert.ok(second.ok && second.applied);
    assert.deepEqual(second.endpoints.map((e) => [e.id, e.state]), [['ep_a', 'serving'], ['ep_s', 'failed'], ['ep_b', 'serving']]);
    assert.equal((await exchange('127.0.0.1', pb, 'b serves')).toString(), 'b serves');
    assert.equal(edge.status().endpoints.find((e) => e.id === 'ep_s')?.state, 'failed');

    // The squatter goes: the endpoint serves with no new snapshot.
    await squatter.release();
    await eventually(() => edge.status().endpoints.find((e) => e.id === 'ep_s')?.state === 'serving', 'the retried listener to bind', 400, 25);
    assert.equal((await exchange('127.0.0.1', held, 'mine now')).toString(), 'mine now');
    assert.ok(changes >= 1, 'the bind after a retry is reported as a state change');
    assert.equal(edge.status().version, 2);
  });

  test('a snapshot without the failed endpoint stops its retries', async (t) => {
    const echo = await startEchoBackend(t);
    const [pa, held] = [await freePort(), await freePort()];
    const squatter = await squatPort(t, held);
    const edge = createTestEdge(t, io, RETRY);
    const a = endpoint({ id: 'a', bind: lo(pa), backends: [echo] });
    const first = await edge.apply({ version: 1, endpoints: [a, endpoint({ id: 's', bind: lo(held), backends: [echo] })] });
    assert.ok(first.ok && first.applied);
    assert.equal(first.endpoints[1]?.state, 'failed');

    const second = await edge.apply({ version: 2, endpoints: [a] });
    assert.ok(second.ok && second.applied);
    assert.deepEqual(edge.status().endpoints.map((e) => e.id), ['a']);
    await squatter.release();
    // Several retry periods (50, 100, 200 ms ...) pass: nothing binds the port again.
    await delay(1000);
    await assert.rejects(exchange('127.0.0.1', held, 'x'), { code: 'ECONNREFUSED' });
    assert.deepEqual(edge.status().listeners.map((l) => l.port), [pa]);
  });

  test('an endpoint whose listener is retried can be re-added after its removal and serves', async (t) => {
    const echo = await startEchoBackend(t);
    const held = await freePort();
    const squatter = await squatPort(t, held);
    const edge = createTestEdge(t, io, RETRY);
    const s = endpoint({ id: 's', bind: lo(held), backends: [echo] });
    await edge.apply({ version: 1, endpoints: [s] });
    await edge.apply({ version: 2, endpoints: [] });
    await squatter.release();
    const again = await edge.apply({ version: 3, endpoints: [s] });
    assert.ok(again.ok && again.applied);
    // socat's last forked child may hold the port a moment longer: then the retry binds it.
    await eventually(() => edge.status().endpoints[0]?.state === 'serving', 'the re-added endpoint to serve', 400, 25);
    assert.equal((await exchange('127.0.0.1', held, 'back')).toString(), 'back');
  });
});
