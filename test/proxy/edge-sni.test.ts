// SNI passthrough: TLS endpoints sharing one address:port, routed by the ClientHello's server name
// without terminating TLS; real node:tls clients and openssl s_client reach the right backend.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import type { EndpointConfig } from '../../proxy/edge-config.js';
import type { Edge } from '../../proxy/edge.js';
import { requirePeer } from '../support/peer-binary.js';
import { startProxyRecorder } from '../support/proxy-recorder.js';
import { freePort } from '../support/tcp-client.js';
import type { TcpIo } from '../../proxy/tcp-io/tcp-io.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';
import { startTlsBackend, TEST_CERT, tlsGreeting } from '../support/tls-backend.js';

async function sniEdge(t: TestContext, io: TcpIo, withDefault = true): Promise<{ port: number; edge: Edge; endpoints: EndpointConfig[] }> {
  const [a, b, w, d] = [await startTlsBackend(t, 'A'), await startTlsBackend(t, 'B'), await startTlsBackend(t, 'W'), await startTlsBackend(t, 'D')];
  const port = await freePort();
  const bind = [{ address: '127.0.0.1', port }];
  const pass = (id: string, backend: { address: string; port: number }, options: Partial<EndpointConfig>) =>
    endpoint({ id, bind, backends: [backend], options: { tls: 'passthrough', ...options } });
  const endpoints = [
    pass('a', a, { sni: ['a.example.com'] }),
    pass('b', b, { sni: ['B.Example.com'] }),
    pass('w', w, { sni: ['*.wild.example.com'] }),
    ...(withDefault ? [pass('d', d, { sniDefault: true })] : []),
  ];
  const edge = createTestEdge(t, io, { testTimers: { sweepIntervalMs: 25 }, helloTimeoutMs: 300 });
  const result = await edge.apply({ version: 1, endpoints });
  assert.equal(result.ok, true, JSON.stringify(result));
  return { port, edge, endpoints };
}

forEachIo((io) => {
  test('TLS clients reach the backend named by their SNI through one shared port', async (t) => {
    const { port, edge } = await sniEdge(t, io);
    assert.equal(await tlsGreeting(port, 'a.example.com'), 'A');
    assert.equal(await tlsGreeting(port, 'b.example.com'), 'B');
    assert.equal(await tlsGreeting(port, 'x.wild.example.com'), 'W');
    // Not covered: no name claims it, so the default endpoint takes it (its cert does not match: skip the check).
    assert.equal(await tlsGreeting(port, 'other.example.org', { rejectUnauthorized: false }), 'D');
    assert.equal(await tlsGreeting(port, 'deep.x.wild.example.com', { rejectUnauthorized: false }), 'D');
    assert.deepEqual(edge.status().listeners.map((l) => l.endpoint), ['a,b,w,d']);
  });

  test('without a default endpoint an unknown name and a non-TLS client are closed and counted', async (t) => {
    const { port, edge } = await sniEdge(t, io, false);
    await assert.rejects(tlsGreeting(port, 'nobody.example.com', { rejectUnauthorized: false }));
    const plain = net.connect({ host: '127.0.0.1', port });
    plain.on('error', () => undefined);
    plain.write('GET / HTTP/1.0\r\n\r\n');
    await new Promise((resolve) => plain.on('close', resolve));
    const silent = net.connect({ host: '127.0.0.1', port });
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.on('close', resolve));
    const listener = edge.metrics().listeners[0]!;
    assert.deepEqual([listener.refusedSniNoMatch, listener.refusedTlsHello], [1, 2]);
    assert.equal(await tlsGreeting(port, 'a.example.com'), 'A');
  });

  test('a ClientHello over 1.5 KB written in small segments is reassembled and forwarded untouched', async (t) => {
    const { port } = await sniEdge(t, io);
    // A relay between a real TLS client and the edge that cuts the client's first 4 KB into 64-byte
    // segments, 2 ms apart; the handshake completing proves the bytes arrived intact.
    let firstFlight = 0;
    const relay = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port, noDelay: true });
      let sent = 0;
      let queue = Promise.resolve();
      client.on('data', (chunk: Buffer) => {
        firstFlight = Math.max(firstFlight, sent === 0 ? chunk.length : firstFlight);
        for (let at = 0; at < chunk.length; at += 64) {
          const piece = chunk.subarray(at, at + 64);
          const small = sent < 4096;
          sent += piece.length;
          queue = queue.then(async () => {
            upstream.write(piece);
            if (small) await new Promise((r) => setTimeout(r, 2));
          });
        }
      });
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.on('error', () => undefined);
      upstream.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => relay.listen({ host: '127.0.0.1', port: 0 }, resolve));
    t.after(() => relay.close());
    const relayPort = (relay.address() as net.AddressInfo).port;
    const alpn = Array.from({ length: 120 }, (_, i) => `proto-${i}-${'x'.repeat(8)}`);
    alpn.push('pier-test');
    assert.equal(await tlsGreeting(relayPort, 'b.example.com', { ALPNProtocols: alpn }), 'B');
    assert.ok(firstFlight > 1500, `the ClientHello was ${firstFlight} bytes`);
  });

  test('a passthrough endpoint sends the SNI name, a unique id and a CRC32C in its PROXY v2 header', async (t) => {
    const recorder = await startProxyRecorder(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({
          id: 'pp',
          bind: [{ address: '127.0.0.1', port }],
          backends: [recorder],
          proxyProtocol: 'v2',
          options: { tls: 'passthrough', sni: ['a.example.com'], proxyProtocolTlvs: ['authority', 'unique-id', 'crc32c'] },
        }),
      ],
    });
    for (let i = 0; i < 2; i++) {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'a.example.com', ca: TEST_CERT });
      socket.on('error', () => undefined);
      t.after(() => socket.destroy());
    }
    const [first, second] = [await recorder.header(0), await recorder.header(1)];
    assert.deepEqual(recorder.errors, []);
    assert.equal(first.authority, 'a.example.com');
    assert.equal(first.uniqueId?.length, 16);
    assert.notDeepEqual(first.uniqueId, second.uniqueId);
    assert.ok(first.tlvs.some((tlv) => tlv.type === 0x03), 'a CRC32C TLV, verified by the reader');
  });

  test('openssl s_client -servername reaches the right backend', async (t) => {
    const openssl = requirePeer(t, 'openssl');
    if (openssl === null) return;
    const { port } = await sniEdge(t, io);
    const child = spawn(openssl, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'b.example.com', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    const greeting = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      child.once('exit', (code) => reject(new Error(`openssl exited ${code} before a greeting: ${out}`)));
    });
    assert.equal(greeting, 'B');
  });
});
