// PROXY protocol out: the header is the backend's first bytes and names the real client and the
// address:port it reached, for IPv4 and IPv6 clients, in v2 and v1.

import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { ProxyProtocolMode } from '../../proxy/edge-config.js';
import { startProxyHeaderSink } from '../support/proxy-header-sink.js';
import { connectClient, freePort, freePortOnBoth } from '../support/tcp-client.js';
import type { TcpIo } from '../../proxy/tcp-io/tcp-io.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

async function edgeWithSink(t: TestContext, io: TcpIo, mode: ProxyProtocolMode, bind: { address: string; port: number }[]) {
  const sink = await startProxyHeaderSink(t);
  const edge = createTestEdge(t, io);
  const result = await edge.apply({ version: 1, endpoints: [endpoint({ id: 'pp', bind, backends: [sink], proxyProtocol: mode })] });
  assert.equal(result.ok, true);
  return sink;
}

forEachIo((io) => {
  test('a v2 header arrives first and carries an IPv4 client and the address it reached', async (t) => {
    const port = await freePort('127.0.0.2');
    const sink = await edgeWithSink(t, io, 'v2', [{ address: '127.0.0.2', port }]);

    const client = await connectClient(t, '127.0.0.2', port);
    assert.equal((await client.roundTrip('payload after the header')).toString(), 'payload after the header');
    const header = await sink.header(0);
    assert.deepEqual(sink.errors, []);
    assert.equal(header.version, 2);
    assert.equal(header.family, 'TCP4');
    assert.deepEqual(header.source, { address: client.socket.localAddress, port: client.socket.localPort });
    assert.deepEqual(header.destination, { address: '127.0.0.2', port });
  });

  test('a v2 header carries an IPv6 client to an IPv4 backend', async (t) => {
    const port = await freePort('::1');
    const sink = await edgeWithSink(t, io, 'v2', [{ address: '::1', port }]);

    const client = await connectClient(t, '::1', port);
    assert.equal((await client.roundTrip('six')).toString(), 'six');
    const header = await sink.header(0);
    assert.equal(header.family, 'TCP6');
    assert.deepEqual(header.source, { address: '::1', port: client.socket.localPort });
    assert.deepEqual(header.destination, { address: '::1', port });
    assert.equal(header.raw.length, 52);
  });

  test('v1 headers carry IPv4 and IPv6 clients on the same endpoint', async (t) => {
    const port = await freePortOnBoth();
    const sink = await edgeWithSink(t, io, 'v1', [{ address: '127.0.0.1', port }, { address: '::1', port }]);

    const v4 = await connectClient(t, '127.0.0.1', port);
    assert.equal((await v4.roundTrip('four')).toString(), 'four');
    const v6 = await connectClient(t, '::1', port);
    assert.equal((await v6.roundTrip('six')).toString(), 'six');

    assert.equal((await sink.header(0)).raw.toString(), `PROXY TCP4 127.0.0.1 127.0.0.1 ${v4.socket.localPort} ${port}\r\n`);
    assert.equal((await sink.header(1)).raw.toString(), `PROXY TCP6 ::1 ::1 ${v6.socket.localPort} ${port}\r\n`);
    assert.deepEqual(sink.errors, []);
  });

  test('each failover attempt starts with the header again', async (t) => {
    const sink = await startProxyHeaderSink(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    const refused = { id: 'refused', address: '127.0.0.1', port: await freePort() };
    await edge.apply({
      version: 1,
      endpoints: [endpoint({ id: 'pp', bind: [{ address: '127.0.0.1', port }], backends: [refused, { ...sink, id: 'sink' }], proxyProtocol: 'v2' })],
    });
    const first = await connectClient(t, '127.0.0.1', port);
    assert.equal((await first.roundTrip('one')).toString(), 'one');
    // The sink now holds one connection, so the refusing backend is tried first.
    const second = await connectClient(t, '127.0.0.1', port);
    assert.equal((await second.roundTrip('two')).toString(), 'two');
    assert.equal((await sink.header(1)).source.port, second.socket.localPort);
    assert.ok((edge.status().backends.find((b) => b.id === 'refused')?.connectFailures ?? 0) >= 1);
    assert.deepEqual(sink.errors, []);
  });
});
