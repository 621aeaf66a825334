// PROXY protocol in: a port that requires the header takes it only from trusted sources, and the
// client address it names is the one allow-lists, the outbound header and the close log see.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { INETProtocol, Peer, V1ProxyProtocol } from 'proxy-protocol-js';
import type { EndpointConfig } from '../../proxy/edge-config.js';
import { buildProxyHeader } from '../../proxy/proxy-header.js';
import { eventually } from '../support/eventually.js';
import { captureLog } from '../support/log-capture.js';
import { startProxyRecorder } from '../support/proxy-recorder.js';
import { freePort, freePortOnBoth } from '../support/tcp-client.js';
import type { TcpIo } from '../../proxy/tcp-io/tcp-io.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';
import { v2Header } from './proxy-header-fixtures.js';

const TRUSTED = { trustedCidrs: ['127.0.0.1/32', '::1'] };
const FAST = { testTimers: { sweepIntervalMs: 25 }, proxyHeaderTimeoutMs: 200 };

async function proxyInEdge(t: TestContext, io: TcpIo, options: Partial<EndpointConfig> = {}, bind?: { address: string; port: number }[], headerTimeoutMs = FAST.proxyHeaderTimeoutMs) {
  const recorder = await startProxyRecorder(t);
  const port = bind?.[0]?.port ?? (await freePort());
  const captured = captureLog();
  const edge = createTestEdge(t, io, { ...FAST, proxyHeaderTimeoutMs: headerTimeoutMs, log: captured.log, connectionLogSampleRate: 1 });
  const result = await edge.apply({
    version: 1,
    endpoints: [
      endpoint({
        id: 'in',
        bind: bind ?? [{ address: '127.0.0.1', port }],
        backends: [recorder],
        proxyProtocol: 'v2',
        options: { acceptProxyProtocol: TRUSTED, ...options },
      }),
    ],
  });
  assert.equal(result.ok, true, JSON.stringify(result));
  return { recorder, port, edge, captured };
}

/** Connects (optionally from `localAddress`), writes each piece as its own segment, and resolves with the reply or how it ended. */
function send(port: number, pieces: Buffer[], opts: { host?: string; localAddress?: string; expect?: number } = {}): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host ?? '127.0.0.1', port, noDelay: true, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const chunks: Buffer[] = [];
    const expect = opts.expect ?? 0;
    socket.on('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        // Separate segments: wait for the write to leave and a little more.
        await new Promise((r) => setTimeout(r, 5));
      }
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (expect > 0 && Buffer.concat(chunks).length >= expect) {
        resolve({ reply: Buffer.concat(chunks), closed: false });
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ reply: Buffer.concat(chunks), closed: true }));
    setTimeout(() => reject(new Error('no reply and no close')), 5000).unref();
  });
}

forEachIo((io) => {
  test('a v2 header from a trusted proxy replaces the client address in the outbound header and the log', async (t) => {
    const { recorder, port, captured } = await proxyInEdge(t, io);
    const header = buildProxyHeader('v2', { address: '203.0.113.7', port: 40001 }, { address: '198.51.100.1', port: 443 })!;
    const { reply } = await send(port, [Buffer.concat([header, Buffer.from('hello')])], { expect: 5 });
    assert.equal(reply.toString(), 'hello');
    const out = await recorder.header(0);
    assert.deepEqual([out.source, out.destination], [{ address: '203.0.113.7', port: 40001 }, { address: '198.51.100.1', port: 443 }]);
    await eventually(() => captured.messages('connection closed').length === 1, 'the close log line');
    assert.equal(captured.messages('connection closed')[0]?.client, '203.0.113.7:40001');
  });

  test('v1 and v2 headers built by proxy-protocol-js are read, IPv4 and IPv6, on IPv4 and IPv6 listeners', async (t) => {
    const port = await freePortOnBoth();
    const { recorder } = await proxyInEdge(t, io, {}, [{ address: '127.0.0.1', port }, { address: '::1', port }]);
    const v1 = new V1ProxyProtocol(INETProtocol.TCP4, new Peer('192.0.2.10', 5555), new Peer('192.0.2.20', 80)).build();
    assert.equal((await send(port, [Buffer.from(`${v1}one`)], { expect: 3 })).reply.toString(), 'one');
    const v2 = v2Header('2001:db8::5', 6666, '2001:db8::1', 443);
    assert.equal((await send(port, [Buffer.concat([v2, Buffer.from('two')])], { host: '::1', expect: 3 })).reply.toString(), 'two');
    assert.deepEqual((await recorder.header(0)).source, { address: '192.0.2.10', port: 5555 });
    assert.deepEqual((await recorder.header(1)).source, { address: '2001:db8::5', port: 6666 });
    assert.deepEqual((await recorder.header(1)).destination, { address: '2001:db8::1', port: 443 });
  });

  test('a header split across many segments is reassembled, payload untouched', async (t) => {
    // 28 segments 5 ms apart: on a loaded machine they take far longer than the 200 ms the other
    // tests give a header, so this one waits as long as a real edge does.
    const { recorder, port } = await proxyInEdge(t, io, {}, undefined, 3000);
    const header = v2Header('192.0.2.99', 1234, '192.0.2.1', 8443);
    const pieces = [...header].map((byte) => Buffer.from([byte]));
    pieces.push(Buffer.from('after'));
    assert.equal((await send(port, pieces, { expect: 5 })).reply.toString(), 'after');
    assert.deepEqual((await recorder.header(0)).source, { address: '192.0.2.99', port: 1234 });
  });

  test('the address from the header is what the allow and deny lists check', async (t) => {
    const { port, edge } = await proxyInEdge(t, io, { allow: ['203.0.113.0/24'], deny: ['203.0.113.66'] });
    const from = (address: string) => buildProxyHeader('v1', { address, port: 1000 }, { address: '192.0.2.1', port: 443 })!;
    assert.equal((await send(port, [Buffer.concat([from('203.0.113.5'), Buffer.from('in')])], { expect: 2 })).reply.toString(), 'in');
    const outside = await send(port, [Buffer.concat([from('198.51.100.9'), Buffer.from('out')])]);
    assert.deepEqual([outside.closed, outside.reply.length], [true, 0]);
    const denied = await send(port, [Buffer.concat([from('203.0.113.66'), Buffer.from('out')])]);
    assert.deepEqual([denied.closed, denied.reply.length], [true, 0]);
    assert.equal(edge.metrics().endpoints[0]?.refusedAllowList, 2);
  });

  test('a LOCAL header keeps the socket addresses', async (t) => {
    const { recorder, port } = await proxyInEdge(t, io);
    const local = Buffer.from('0d0a0d0a000d0a515549540a20000000', 'hex');
    assert.equal((await send(port, [Buffer.concat([local, Buffer.from('hc')])], { expect: 2 })).reply.toString(), 'hc');
    const out = await recorder.header(0);
    assert.equal(out.source?.address, '127.0.0.1');
    assert.deepEqual(out.destination, { address: '127.0.0.1', port });
  });

  test('a connection from an untrusted source is refused, even with a valid header', async (t) => {
    const { port, edge, captured, recorder } = await proxyInEdge(t, io, { acceptProxyProtocol: { trustedCidrs: ['127.0.0.2/32'] } });
    const header = v2Header('192.0.2.1', 1, '192.0.2.2', 2);
    const untrusted = await send(port, [Buffer.concat([header, Buffer.from('x')])], { localAddress: '127.0.0.1' });
    assert.deepEqual([untrusted.closed, untrusted.reply.length], [true, 0]);
    const trusted = await send(port, [Buffer.concat([header, Buffer.from('y')])], { localAddress: '127.0.0.2', expect: 1 });
    assert.equal(trusted.reply.toString(), 'y');
    assert.equal(recorder.headers.length, 1);
    assert.equal(edge.metrics().listeners[0]?.refusedUntrustedProxy, 1);
    assert.equal(captured.messages('connection closed').filter((l) => l.reason === 'refused-untrusted-proxy').length, 1);
  });

  test('a trusted source that sends no header, or garbage, is closed', async (t) => {
    const { port, edge, recorder } = await proxyInEdge(t, io);
    const silent = await send(port, []);
    assert.equal(silent.closed, true);
    const garbage = await send(port, [Buffer.from('GET / HTTP/1.1\r\n\r\n')]);
    assert.deepEqual([garbage.closed, garbage.reply.length], [true, 0]);
    assert.equal(recorder.headers.length, 0);
    assert.equal(edge.metrics().listeners[0]?.refusedProxyHeader, 2);
  });

  test('the PROXY header timeout never goes below 3 s outside tests', async (t) => {
    const recorder = await startProxyRecorder(t);
    const port = await freePort();
    const edge = createTestEdge(t, io, { proxyHeaderTimeoutMs: 10 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'in', bind: [{ address: '127.0.0.1', port }], backends: [recorder], proxyProtocol: 'v2', options: { acceptProxyProtocol: TRUSTED } })] });
    const socket = net.connect({ host: '127.0.0.1', port });
    t.after(() => socket.destroy());
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    // Well past 10 ms (and past one 1 s sweep), the connection still waits for its header.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.equal(closed, false);
    socket.write(Buffer.concat([v2Header('192.0.2.3', 3, '192.0.2.4', 4), Buffer.from('late')]));
    assert.deepEqual((await recorder.header(0)).source, { address: '192.0.2.3', port: 3 });
  });
});
