// Per-endpoint policy on real connections: allow and deny lists, connection limits per endpoint and
// per client, idle and half-close timeouts from the sweeper, and passive ejection of a backend.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { connectClient, exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

const FAST = { testTimers: { sweepIntervalMs: 25 } };

/** Connects from `localAddress`, sends `text`, resolves with the reply, or null when closed without one. */
function tryExchange(port: number, localAddress: string, text: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress, allowHalfOpen: true }, () => socket.end(text));
    let reply = '';
    socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(reply === '' ? null : reply));
  });
}

forEachIo((io) => {
  test('deny wins over allow, and only allowed clients are served', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    const bind = [{ address: '127.0.0.1', port }];
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind, backends: [echo], options: { allow: ['127.0.0.0/8'], deny: ['127.0.0.3'] } })] });
    assert.equal(await tryExchange(port, '127.0.0.2', 'two'), 'two');
    assert.equal(await tryExchange(port, '127.0.0.3', 'three'), null);
    await edge.apply({ version: 2, endpoints: [endpoint({ id: 'e', bind, backends: [echo], options: { allow: ['::ffff:127.0.0.2/128'] } })] });
    assert.equal(await tryExchange(port, '127.0.0.2', 'mapped allow'), 'mapped allow');
    assert.equal(await tryExchange(port, '127.0.0.1', 'not listed'), null);
    assert.equal(edge.metrics().endpoints[0]?.refusedAllowList, 2);
    assert.equal(echo.accepted, 2);
  });

  test('maxConnections refuses connections beyond the limit until one ends', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [echo], options: { maxConnections: 2 } })] });
    const first = await connectClient(t, '127.0.0.1', port);
    const second = await connectClient(t, '127.0.0.1', port);
    assert.equal((await first.roundTrip('1')).toString(), '1');
    assert.equal((await second.roundTrip('2')).toString(), '2');
    assert.equal(await tryExchange(port, '127.0.0.1', 'third'), null);
    first.socket.destroy();
    await eventually(() => edge.metrics().endpoints[0]?.connectionsActive === 1, 'the first connection to end');
    assert.equal(await tryExchange(port, '127.0.0.1', 'again'), 'again');
    assert.equal(edge.metrics().endpoints[0]?.refusedLimit, 1);
  });

  test('maxConnectionsPerClient limits one client address, not the others', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [echo], options: { maxConnectionsPerClient: 1 } })] });
    const held = await connectClient(t, '127.0.0.1', port);
    assert.equal((await held.roundTrip('held')).toString(), 'held');
    assert.equal(await tryExchange(port, '127.0.0.1', 'same client'), null);
    assert.equal(await tryExchange(port, '127.0.0.2', 'other client'), 'other client');
    held.socket.destroy();
    await eventually(() => edge.metrics().endpoints[0]?.connectionsActive === 0, 'the held connection to end');
    assert.equal(await tryExchange(port, '127.0.0.1', 'same client later'), 'same client later');
  });

  test('the idle timeout closes an idle connection but not an active one', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io, FAST);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [echo], options: { idleTimeoutMs: 300 } })] });
    const idle = await connectClient(t, '127.0.0.1', port);
    const active = await connectClient(t, '127.0.0.1', port);
    assert.equal((await idle.roundTrip('once')).toString(), 'once');
    let idleClosed = false;
    void idle.closed.then(() => (idleClosed = true));
    // Keep one connection busy until the other has been cut (bounded: 400 rounds).
    for (let i = 0; i < 400 && !idleClosed; i++) {
      assert.equal((await active.roundTrip(`ping ${i}`)).toString(), `ping ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(idleClosed, true);
    assert.equal((await active.roundTrip('still here')).toString(), 'still here');
    assert.equal(edge.metrics().endpoints[0]?.idleTimeouts, 1);
  });

  test('a half-closed connection that goes quiet is closed after the fin timeout', async (t) => {
    // A backend that never answers the client's FIN.
    const mute = net.createServer({ allowHalfOpen: true }, (socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => mute.listen({ host: '127.0.0.1', port: 0 }, resolve));
    t.after(() => mute.close());
    const port = await freePort();
    const edge = createTestEdge(t, io, { ...FAST, finTimeoutMs: 200 });
    const backend = { address: '127.0.0.1', port: (mute.address() as net.AddressInfo).port };
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [backend] })] });
    const client = await connectClient(t, '127.0.0.1', port);
    client.socket.end('bye');
    await client.closed;
    await eventually(() => edge.metrics().endpoints[0]?.connectionsActive === 0, 'the connection to be released');
  });

  test('a backend refusing connections is ejected, skipped, and retried after its backoff', async (t) => {
    const echo = await startEchoBackend(t);
    const refusing = { id: 'refusing', address: '127.0.0.1', port: await freePort() };
    const port = await freePort();
    const edge = createTestEdge(t, io, { ...FAST, ejectBaseMs: 1500 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [refusing, { ...echo, id: 'echo' }] })] });
    const refusingStatus = () => edge.status().backends.find((b) => b.id === 'refusing')!;

    // Each connection picks the refusing backend first half of the time; failures fail over to the echo.
    for (let i = 0; i < 100 && !refusingStatus().ejected; i++) assert.equal((await exchange('127.0.0.1', port, `x${i}`)).toString(), `x${i}`);
    assert.equal(refusingStatus().ejected, true);
    assert.equal(refusingStatus().connectFailures, 3);

    // While ejected it is not even tried.
    for (let i = 0; i < 10; i++) assert.equal((await exchange('127.0.0.1', port, `y${i}`)).toString(), `y${i}`);
    if (refusingStatus().ejected) assert.equal(refusingStatus().connectFailures, 3);

    // Once the backoff is over it is tried again; one more failure ejects it again, for longer.
    await eventually(() => !refusingStatus().ejected, 'the backoff to run out', 400, 10);
    for (let i = 0; i < 100 && refusingStatus().connectFailures === 3; i++) await exchange('127.0.0.1', port, 'z');
    assert.equal(refusingStatus().connectFailures, 4);
    assert.equal(refusingStatus().ejected, true);
    assert.equal(edge.metrics().backends.find((b) => b.backend === 'refusing')?.ejections, 2);
  });

  test('when every backend is ejected they are still tried, and a recovered one serves at once', async (t) => {
    const backendPort = await freePort();
    const port = await freePort();
    const edge = createTestEdge(t, io, { ...FAST, ejectBaseMs: 60_000 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: [{ address: '127.0.0.1', port }], backends: [{ id: 'only', address: '127.0.0.1', port: backendPort }] })] });
    for (let i = 0; i < 4; i++) assert.equal(await tryExchange(port, '127.0.0.1', 'nobody'), null);
    const only = () => edge.status().backends[0]!;
    assert.deepEqual([only().ejected, only().connectFailures], [true, 4]);

    const revived = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => revived.listen({ host: '127.0.0.1', port: backendPort }, resolve));
    t.after(() => revived.close());
    assert.equal(await tryExchange(port, '127.0.0.1', 'back'), 'back');
    assert.equal(only().ejected, false);
  });
});
