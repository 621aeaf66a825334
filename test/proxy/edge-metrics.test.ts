// Counters move with real traffic, and every connection leaves one close log line (clean closes
// sampled, refusals always).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { captureLog } from '../support/log-capture.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

forEachIo((io) => {
  test('connection, byte and backend counters follow the traffic, and each close is logged', async (t) => {
    const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
    const port = await freePort();
    const captured = captureLog();
    const edge = createTestEdge(t, io, { log: captured.log, connectionLogSampleRate: 1 });
    await edge.apply({ version: 7, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [a, b] })] });
    const sizes = [10, 200, 3000];
    for (const size of sizes) assert.equal((await exchange('127.0.0.1', port, Buffer.alloc(size, 1))).length, size);
    const total = sizes.reduce((x, y) => x + y, 0);

    await eventually(() => edge.metrics().endpoints[0]?.connectionsActive === 0, 'connections to be released');
    const metrics = edge.metrics();
    assert.equal(metrics.version, 7);
    assert.deepEqual(
      { ...metrics.endpoints[0] },
      {
        endpoint: 'e',
        name: 'e',
        app: 'test',
        connectionsActive: 0,
        connectionsTotal: 3,
        bytesIn: total,
        bytesOut: total,
        connectErrors: 0,
        retries: 0,
        idleTimeouts: 0,
        refusedAllowList: 0,
        refusedLimit: 0,
        refusedNoBackend: 0,
        refusedFdLimit: 0,
        refusedTlsHandshake: 0,
        refusedClientCert: 0,
      },
    );
    assert.equal(metrics.backends.reduce((sum, m) => sum + m.connectionsTotal, 0), 3);
    assert.equal(metrics.backends.reduce((sum, m) => sum + m.bytesIn, 0), total);
    assert.equal(metrics.backends.reduce((sum, m) => sum + m.bytesOut, 0), total);
    assert.deepEqual(metrics.listeners.map((l) => [l.listener, l.connectionsTotal]), [[`127.0.0.1:${port}`, 3]]);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(metrics)));

    await eventually(() => captured.messages('connection closed').length === 3, 'three close lines');
    const lines = captured.messages('connection closed');
    assert.deepEqual(lines.map((l) => l.bytesIn).sort((x, y) => Number(x) - Number(y)), sizes);
    for (const line of lines) {
      assert.equal(line.reason, 'client-fin');
      assert.equal(line.endpoint, 'e');
      assert.match(String(line.backend), /^b[01]$/);
      assert.match(String(line.client), /^127\.0\.0\.1:\d+$/);
      assert.equal(line.bytesIn, line.bytesOut);
      assert.equal(typeof line.durationMs, 'number');
    }
  });

  test('connect errors and retries are counted, and refusals are logged even when clean closes are not', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const captured = captureLog();
    const edge = createTestEdge(t, io, { log: captured.log, connectionLogSampleRate: 0 });
    const refusing = { id: 'refusing', address: '127.0.0.1', port: await freePort() };
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [refusing, { ...echo, id: 'echo' }], options: { deny: ['127.0.0.0/8'] } }),
      ],
    });
    // Closed at once: a FIN or a reset, never a reply.
    assert.equal((await exchange('127.0.0.1', port, 'denied').catch(() => Buffer.alloc(0))).length, 0);
    await eventually(() => captured.messages('connection closed').length === 1, 'the refusal line');
    assert.equal(captured.messages('connection closed')[0]?.reason, 'refused-allow-list');

    await edge.apply({ version: 2, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [refusing, { ...echo, id: 'echo' }] })] });
    for (let i = 0; i < 100 && edge.metrics().endpoints[0]!.retries === 0; i++) await exchange('127.0.0.1', port, 'r');
    const [endpointMetrics] = edge.metrics().endpoints;
    assert.ok(endpointMetrics!.retries >= 1);
    assert.equal(endpointMetrics!.connectErrors, endpointMetrics!.retries);
    assert.equal(edge.metrics().backends.find((b) => b.backend === 'refusing')?.connectErrors, endpointMetrics!.connectErrors);
    // Clean closes at sample rate 0 leave no line.
    assert.equal(captured.messages('connection closed').length, 1);
  });
});
