// A backend that accepts and then closes or resets before saying anything (docker-proxy in front
// of a port nothing listens on) is a failing backend, not a served connection: the edge fails over
// with the PROXY header and the client's bytes replayed, counts it toward passive ejection, and
// reports it. A backend that answers, or one that closes after the client's own FIN, is left alone.

import assert from 'node:assert/strict';
import net, { type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { startProxyHeaderSink } from '../support/proxy-header-sink.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];

/** Accepts and at once resets (`reset`) or closes (`close`), or resets once the first bytes came (`reset-after-read`); counts connections. */
async function startBadBackend(t: TestContext, how: 'reset' | 'close' | 'reset-after-read'): Promise<{ address: string; port: number; accepted: number }> {
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    bad.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (how === 'reset') socket.resetAndDestroy();
    else if (how === 'close') socket.end();
    else socket.once('data', () => socket.resetAndDestroy());
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const bad = { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port, accepted: 0 };
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return bad;
}

forEachIo((io) => {
  for (const how of ['reset', 'close'] as const) {
    test(`a backend that accepts and ${how === 'reset' ? 'resets' : 'closes'} at once is failed over with the bytes replayed, then ejected and reported`, async (t) => {
      const bad = await startBadBackend(t, how);
      const good = await startEchoBackend(t);
      const port = await freePort();
      const edge = createTestEdge(t, io, { ejectBaseMs: 60_000 });
      await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [{ ...bad, id: 'bad' }, { ...good, id: 'good' }] })] });

      // Until the bad backend has failed three times (bounded): every client gets its echo.
      for (let i = 0; i < 100 && bad.accepted < 3; i++) {
        const payload = `request ${i} `.repeat(50);
        assert.equal((await exchange('127.0.0.1', port, payload)).toString(), payload, `connection ${i}`);
      }
      assert.equal(bad.accepted, 3, 'the bad backend was tried three times');
      const status = edge.status().backends.find((b) => b.id === 'bad');
      assert.equal(status?.ejected, true, 'three early failures in a row eject it');
      assert.equal(status?.connectFailures, 3);
      assert.equal(status?.lastError, how === 'reset' ? 'ECONNRESET' : 'EARLYCLOSE');
      assert.equal(edge.metrics().endpoints[0]?.connectErrors, 3);
      assert.equal(edge.metrics().endpoints[0]?.retries, 3);

      // Ejected: new connections go straight to the good backend.
      const before = good.accepted;
      for (let i = 0; i < 5; i++) assert.equal((await exchange('127.0.0.1', port, 'after')).toString(), 'after');
      assert.equal(good.accepted, before + 5);
      assert.equal(bad.accepted, 3);
    });
  }

  test('on failover after an early reset the next backend gets the PROXY header first and the client bytes once', async (t) => {
    // It reads the header and the first bytes, then resets: both must go again to the next one.
    const bad = await startBadBackend(t, 'reset-after-read');
    const sink = await startProxyHeaderSink(t);
    const port = await freePort();
    const edge = createTestEdge(t, io, { ejectAfterFailures: 1000 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(port), proxyProtocol: 'v2', backends: [{ ...bad, id: 'bad' }, { ...sink, id: 'sink' }] })] });
    let sent = 0;
    // Until a few connections met the bad backend first (bounded).
    while (bad.accepted < 3 && sent < 100) {
      const payload = Buffer.from(`hello ${sent} over the replay`);
      assert.deepEqual(await exchange('127.0.0.1', port, payload), payload);
      sent++;
    }
    assert.equal(bad.accepted, 3);
    assert.deepEqual(sink.errors, [], 'every connection at the sink starts with a valid header');
    assert.equal(sink.headers.length, sent, 'one header per connection: the replay starts the stream over');
    for (const header of sink.headers) assert.equal(header.destination.port, port);
  });

  test('a backend that answers and closes, or closes after the client finished, is not failed over', async (t) => {
    const greeter = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.resume();
      socket.end('hello and bye');
    });
    await new Promise<void>((resolve) => greeter.listen({ host: '127.0.0.1', port: 0 }, resolve));
    t.after(() => new Promise<void>((resolve) => greeter.close(() => resolve())));
    // A sink for one-way data: reads to the client's FIN, then closes without a byte.
    let sunk = 0;
    const sinkServer = net.createServer({ allowHalfOpen: true }, (socket) => {
      sunk++;
      socket.on('error', () => undefined);
      socket.resume();
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => sinkServer.listen({ host: '127.0.0.1', port: 0 }, resolve));
    t.after(() => new Promise<void>((resolve) => sinkServer.close(() => resolve())));
    const spare = await startEchoBackend(t);

    const [p1, p2] = [await freePort(), await freePort()];
    const edge = createTestEdge(t, io);
    const greeterPort = (greeter.address() as net.AddressInfo).port;
    const sinkPort = (sinkServer.address() as net.AddressInfo).port;
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({ id: 'greet', bind: lo(p1), backends: [{ address: '127.0.0.1', port: greeterPort, id: 'greeter' }] }),
        endpoint({ id: 'sink', bind: lo(p2), backends: [{ address: '127.0.0.1', port: sinkPort, id: 'sink' }, { ...spare, id: 'spare' }] }),
      ],
    });
    assert.equal((await exchange('127.0.0.1', p1, 'hi')).toString(), 'hello and bye');
    // Sent to whichever the balancer picks (until the sink has had some); the sink's close after
    // our FIN is its answer, not a failure.
    let sent = 0;
    while (sent < 6 || (sunk < 2 && sent < 60)) {
      await exchange('127.0.0.1', p2, 'log line\n');
      sent++;
    }
    await eventually(() => edge.metrics().endpoints.every((e) => e.connectionsActive === 0), 'connections to end');
    assert.ok(sunk >= 2, `the sink was used (${sunk} of ${sent})`);
    assert.equal(spare.accepted + sunk, sent, 'one backend per connection: nothing was replayed');
    for (const e of edge.metrics().endpoints) assert.equal(e.connectErrors, 0, e.endpoint);
  });

  test('a backend that resets once it read the first bytes is failed over too, unless earlyFailureMs is 0', async (t) => {
    const bad = await startBadBackend(t, 'reset-after-read');
    const good = await startEchoBackend(t);
    const [p1, p2] = [await freePort(), await freePort()];
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(p1), backends: [{ ...bad, id: 'bad' }, { ...good, id: 'good' }] })] });
    for (let i = 0; i < 100 && bad.accepted < 2; i++) assert.equal((await exchange('127.0.0.1', p1, `read me ${i}`)).toString(), `read me ${i}`);
    assert.equal(bad.accepted, 2);

    const off = createTestEdge(t, io, { earlyFailureMs: 0 });
    await off.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(p2), backends: [{ ...bad, id: 'bad' }] })] });
    // The client is closed (a FIN, or a reset) with nothing echoed.
    const reply = await exchange('127.0.0.1', p2, 'x').catch(() => Buffer.alloc(0));
    assert.equal(reply.length, 0);
    assert.equal(bad.accepted, 3);
    assert.equal(off.status().backends[0]?.connectFailures, 0, 'a connect that succeeded is not a failure with the window off');
  });
});
