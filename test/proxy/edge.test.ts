// The edge proxying real TCP connections on loopback: forwarding, balancing, half-close, failover.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { startBlackHole } from '../support/port-holder.js';
import { connectClient, exchange, freePort, freePortOnBoth } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

forEachIo((io) => {
  test('bytes round-trip through the edge on 127.0.0.1 and on ::1 at the same port', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePortOnBoth();
    const edge = createTestEdge(t, io);
    const bind = [{ address: '127.0.0.1', port }, { address: '::1', port }];
    assert.deepEqual(await edge.apply({ version: 1, endpoints: [endpoint({ id: 'echo', bind, backends: [echo] })] }), {
      ok: true,
      applied: true,
      version: 1,
    });

    for (const host of ['127.0.0.1', '::1']) {
      const payload = randomBytes(256 * 1024);
      assert.deepEqual(await exchange(host, port, payload), payload, host);
    }
    assert.deepEqual(
      edge.status().listeners.map((l) => `${l.address} ${l.port} ${l.endpoint}`).sort(),
      [`127.0.0.1 ${port} echo`, `::1 ${port} echo`],
    );
  });

  test('a backend on IPv6 is reached over IPv6, from IPv4 and IPv6 clients alike', async (t) => {
    const echo6 = await startEchoBackend(t, { host: '::1' });
    const port = await freePortOnBoth();
    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }, { address: '::1', port }], backends: [{ ...echo6, id: 'v6' }] })],
    });
    const payload = randomBytes(200 * 1024);
    assert.deepEqual(await exchange('127.0.0.1', port, payload), payload);
    assert.deepEqual(await exchange('::1', port, payload), payload);
    assert.equal(echo6.accepted, 2);
    assert.equal(edge.status().backends[0]?.connectFailures, 0);
  });

  test('connections spread over two backends by least connections', async (t) => {
    const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [a, b] })] });

    for (let i = 0; i < 4; i++) {
      const client = await connectClient(t, '127.0.0.1', port);
      assert.equal((await client.roundTrip(`hello ${i}`)).toString(), `hello ${i}`);
    }
    assert.equal(a.accepted, 2);
    assert.equal(b.accepted, 2);
    assert.deepEqual(edge.status().backends.map((s) => s.active), [2, 2]);
  });

  test('the client can end writing first and still receives the whole reply', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [echo] })] });

    // exchange() sends its FIN right after the payload; the echo replies after it and then ends.
    const payload = randomBytes(2 * 1024 * 1024);
    assert.deepEqual(await exchange('127.0.0.1', port, payload), payload);
    await eventually(() => edge.status().backends[0]?.active === 0, 'the connection to be released');
  });

  test('the backend can end writing first and still receives the client bytes', async (t) => {
    const received: Promise<string>[] = [];
    const greeter = net.createServer({ allowHalfOpen: true }, (socket) => {
      let text = '';
      received.push(
        new Promise((resolve) => {
          socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
          socket.on('end', () => {
            resolve(text);
            socket.destroy();
          });
        }),
      );
      socket.end('hello, then FIN');
    });
    await new Promise<void>((resolve) => greeter.listen({ host: '127.0.0.1', port: 0 }, resolve));
    t.after(() => greeter.close());
    const port = await freePort();
    const edge = createTestEdge(t, io);
    const backend = { address: '127.0.0.1', port: (greeter.address() as net.AddressInfo).port };
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [backend] })] });

    const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    t.after(() => client.destroy());
    let greeting = '';
    client.on('data', (chunk: Buffer) => (greeting += chunk.toString()));
    await new Promise<void>((resolve) => client.once('end', resolve));
    assert.equal(greeting, 'hello, then FIN');
    client.end('late bytes after the server FIN');
    assert.equal(await received[0], 'late bytes after the server FIN');
  });

  test('a refused connect fails over to another backend, replaying the client bytes', async (t) => {
    const echo = await startEchoBackend(t);
    const refused = { id: 'refused', address: '127.0.0.1', port: await freePort() };
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [refused, { ...echo, id: 'echo' }] })],
    });

    // Holding one connection on the echo makes the idle refusing backend the next first choice.
    const held = await connectClient(t, '127.0.0.1', port);
    assert.equal((await held.roundTrip('hold')).toString(), 'hold');
    const payload = randomBytes(64 * 1024);
    assert.deepEqual(await exchange('127.0.0.1', port, payload), payload);

    const failures = edge.status().backends.find((b) => b.id === 'refused')?.connectFailures ?? 0;
    assert.ok(failures >= 1, 'the refusing backend was tried');
    assert.equal(echo.accepted, 2);
  });

  test('a connect that times out fails over and the bytes sent meanwhile arrive intact', async (t) => {
    const echo = await startEchoBackend(t);
    const hole = { id: 'hole', address: '127.0.0.1', port: await startBlackHole(t) };
    const port = await freePort();
    const edge = createTestEdge(t, io, { connectTimeoutMs: 200 });
    await edge.apply({
      version: 1,
      endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [hole, { ...echo, id: 'echo' }] })],
    });

    const held = await connectClient(t, '127.0.0.1', port);
    assert.equal((await held.roundTrip('hold')).toString(), 'hold');
    // Sent (with the FIN) while the edge still waits on the black hole: all of it must be replayed.
    const payload = randomBytes(8 * 1024);
    assert.deepEqual(await exchange('127.0.0.1', port, payload), payload);
    const failures = edge.status().backends.find((b) => b.id === 'hole')?.connectFailures ?? 0;
    assert.ok(failures >= 1, 'the black hole was tried');
  });

  test('with no backend the client connection is closed', async (t) => {
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [] })] });
    const client = await connectClient(t, '127.0.0.1', port);
    await client.closed;
  });

  test('close stops accepting and closes established connections', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [echo] })] });
    const client = await connectClient(t, '127.0.0.1', port);
    assert.equal((await client.roundTrip('x')).toString(), 'x');

    await edge.close();
    await client.closed;
    await assert.rejects(exchange('127.0.0.1', port, 'y'), { code: 'ECONNREFUSED' });
    await eventually(() => echo.open === 0, 'the backend side to close');
  });
});
