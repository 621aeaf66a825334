// Live reconfiguration under load: concurrent clients keep exchanging through an endpoint while
// ~200 snapshots add and remove one of its backends and another endpoint; none may fail.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

forEachIo((io) => {
  test('200 snapshot changes under concurrent traffic fail or reset no connection', async (t) => {
    const [a, b, c] = [await startEchoBackend(t), await startEchoBackend(t), await startEchoBackend(t)];
    const [port, extraPort] = [await freePort(), await freePort()];
    const edge = createTestEdge(t, io);
    const snapshot = (version: number): EdgeConfig => {
      const grow = version % 2 === 1;
      return {
        version,
        endpoints: [
          endpoint({ id: 'main', bind: [{ address: '127.0.0.1', port }], backends: grow ? [{ ...a, id: 'a' }, { ...b, id: 'b' }] : [{ ...a, id: 'a' }] }),
          ...(grow ? [endpoint({ id: 'extra', bind: [{ address: '127.0.0.1', port: extraPort }], backends: [c] })] : []),
        ],
      };
    };
    assert.equal((await edge.apply(snapshot(1))).ok, true);

    let applying = true;
    let exchanges = 0;
    const failures: string[] = [];
    const client = async (): Promise<void> => {
      // Bounded: stops with the reconfiguration, or at 3000 exchanges in all.
      while (applying && exchanges < 3000) {
        const payload = randomBytes(64 + (exchanges % 512));
        exchanges++;
        try {
          const reply = await exchange('127.0.0.1', port, payload);
          if (!reply.equals(payload)) failures.push(`reply of ${reply.length} bytes for ${payload.length}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 4 }, client);

    for (let version = 2; version <= 201; version++) {
      const result = await edge.apply(snapshot(version));
      assert.equal(result.ok, true, JSON.stringify(result));
      // Spread the changes over ~2 s so they land among the exchanges.
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    applying = false;
    await Promise.all(clients);
    assert.deepEqual(failures, []);
    assert.ok(exchanges >= 8, `only ${exchanges} exchanges ran`);
    assert.equal(edge.status().version, 201);
    t.diagnostic(`${exchanges} exchanges across 200 snapshot changes`);
  });
});
