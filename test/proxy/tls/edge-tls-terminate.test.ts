// tls: terminate at the edge: node:tls and openssl s_client clients talk plaintext to a strict
// PROXY v2 backend that reads the SNI, ALPN and SSL TLVs; the certificate is picked by SNI (exact >
// wildcard > default); tickets resume across edges sharing a seed; a certificate change leaves
// established connections alone; mTLS accepts and refuses; httpRedirect answers 308.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import type { EdgeConfig, EndpointConfig } from '../../../proxy/edge-config.js';
import type { TcpIo } from '../../../proxy/tcp-io/tcp-io.js';
import { requirePeer } from '../../support/peer-binary.js';
import { freePort } from '../../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../../support/test-edge.js';
import { makeTestCa } from '../../support/tls-certs.js';
import { connectTls as connect, echoTls as echo } from '../../support/tls-client.js';
import { startTerminatingEndpoint, type TerminatingEndpoint } from '../../support/tls-endpoint.js';
import { sslTlv } from '../../support/tlv-backend.js';
import { v2Header } from '../proxy-header-fixtures.js';

type Setup = TerminatingEndpoint;

function setup(t: TestContext, terminate: Partial<NonNullable<EndpointConfig['terminate']>> = {}): Promise<Setup> {
  const certs = [
    { id: 'default', names: ['default.example.com'] },
    { id: 'a', names: ['a.example.com'] },
    { id: 'w', names: ['*.wild.example.com'], cn: 'wild' },
  ];
  return startTerminatingEndpoint(t, certs, { alpn: ['h2', 'http/1.1'], ...terminate });
}

const snapshot = (s: Setup, version = 1, extra: Partial<EdgeConfig> = {}): EdgeConfig => ({ version, endpoints: [s.ep], certificates: s.certs, ...extra });

forEachIo((io: TcpIo) => {
  test('terminates TLS, picks the certificate by SNI and sends SNI, ALPN and SSL TLVs to the app', async (t) => {
    const s = await setup(t);
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(snapshot(s))).ok, true);
    const cases: [string | undefined, string][] = [
      ['a.example.com', 'a.example.com'],
      ['x.wild.example.com', 'wild'],
      ['other.example.org', 'default.example.com'],
      [undefined, 'default.example.com'],
    ];
    for (const [name, cn] of cases) {
      const socket = await connect(s.port, { ca: s.ca.cert, ...(name === undefined ? {} : { servername: name }), checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'] });
      assert.equal(socket.getPeerCertificate().subject.CN, cn, `served for ${name}`);
      assert.equal(await echo(socket, 'ping'), 'ping');
      socket.destroy();
    }
    const h = s.backend.headers[0]!;
    assert.equal(h.tlvs.find((x) => x.type === 0x02)?.value.toString(), 'a.example.com');
    assert.equal(h.tlvs.find((x) => x.type === 0x01)?.value.toString(), 'http/1.1');
    const ssl = sslTlv(h)!;
    assert.equal(ssl.client & 0x01, 0x01);
    assert.equal(ssl.verify, 0);
    assert.equal(ssl.subs.get(0x21), 'TLSv1.3');
    assert.match(ssl.subs.get(0x23)!, /^TLS_AES_|^TLS_CHACHA20/);
    assert.deepEqual(s.backend.errors, []);
    // TLS 1.2 is served too.
    const old = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com', maxVersion: 'TLSv1.2' });
    assert.equal(old.getProtocol(), 'TLSv1.2');
    assert.equal(await echo(old, 'v12'), 'v12');
    old.destroy();
    assert.equal(sslTlv(s.backend.headers.at(-1)!)!.subs.get(0x21), 'TLSv1.2');
  });

  test('openssl s_client talks plaintext to the app', async (t) => {
    const openssl = requirePeer(t, 'openssl');
    if (openssl === null) return;
    const s = await setup(t);
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(snapshot(s))).ok, true);
    const child = spawn(openssl, ['s_client', '-connect', `127.0.0.1:${s.port}`, '-servername', 'a.example.com', '-quiet', '-no_ign_eof'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stdin.write('hello through openssl\n');
    const timer = setTimeout(() => child.kill(), 10_000);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (out.includes('hello through openssl')) {
          clearInterval(check);
          resolve();
        }
      }, 20);
      child.on('exit', () => {
        clearInterval(check);
        resolve();
      });
    });
    clearTimeout(timer);
    child.kill();
    assert.match(out, /hello through openssl/);
    assert.equal(s.backend.headers[0]?.tlvs.find((x) => x.type === 0x02)?.value.toString(), 'a.example.com');
  });

  test('behind a trusted proxy: a PROXY v2 header and the ClientHello in one segment complete the handshake, and the app sees the proxied client', async (t) => {
    const s = await setup(t);
    s.ep.acceptProxyProtocol = { trustedCidrs: ['127.0.0.1/32'] };
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(snapshot(s))).ok, true);
    const raw = net.connect({ host: '127.0.0.1', port: s.port, noDelay: true });
    t.after(() => raw.destroy());
    await once(raw, 'connect');
    // The balancer's header goes out with the first bytes the TLS client writes (its hello).
    const header = v2Header('198.51.100.7', 40000, '127.0.0.1', s.port);
    let first = true;
    const carrier = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        raw.write(first ? Buffer.concat([header, chunk]) : chunk, callback);
        first = false;
      },
      final(callback) {
        raw.end();
        callback();
      },
    });
    raw.on('data', (b: Buffer) => carrier.push(b));
    raw.on('end', () => carrier.push(null));
    const secure = tls.connect({ socket: carrier, servername: 'a.example.com', ca: s.ca.cert });
    t.after(() => secure.destroy());
    await once(secure, 'secureConnect');
    assert.equal(await echo(secure, 'behind a balancer'), 'behind a balancer');
    const seen = s.backend.headers.at(-1);
    assert.equal(seen?.source?.address, '198.51.100.7', 'the app sees the client the balancer named');
    assert.equal(seen?.tlvs.find((x) => x.type === 0x02)?.value.toString(), 'a.example.com');
  });

  test('a session ticket from one edge resumes on another with the same seed (workers), not with another seed', async (t) => {
    const s = await setup(t);
    const seed = Buffer.alloc(32, 7);
    const first = createTestEdge(t, io, { ticketSeed: seed });
    assert.equal((await first.apply(snapshot(s))).ok, true);
    const session = await new Promise<Buffer>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: s.port, ca: s.ca.cert, servername: 'a.example.com' });
      socket.once('session', (sess: Buffer) => {
        resolve(sess);
        socket.destroy();
      });
      socket.once('error', reject);
    });
    await first.close();
    const second = createTestEdge(t, io, { ticketSeed: seed });
    assert.equal((await second.apply(snapshot(s))).ok, true);
    const again = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com', session });
    assert.equal(again.isSessionReused(), true);
    assert.equal(await echo(again, 'resumed'), 'resumed');
    again.destroy();
    await second.close();
    const stranger = createTestEdge(t, io, { ticketSeed: Buffer.alloc(32, 9) });
    assert.equal((await stranger.apply(snapshot(s))).ok, true);
    const full = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com', session });
    assert.equal(full.isSessionReused(), false);
    full.destroy();
  });

  test('a new certificate serves new handshakes while an established connection carries on', async (t) => {
    const s = await setup(t);
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(snapshot(s))).ok, true);
    const before = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com' });
    const oldSerial = before.getPeerCertificate().serialNumber;
    assert.equal(await echo(before, 'one'), 'one');
    const renewed = { id: 'a2', names: ['a.example.com'], ...s.ca.issue({ cn: 'a.example.com', names: ['a.example.com'] }) };
    s.certs = [...s.certs.filter((c) => c.id !== 'a'), renewed];
    s.ep = { ...s.ep, terminate: { ...s.ep.terminate!, certificates: ['default', 'a2', 'w'] } };
    assert.equal((await edge.apply(snapshot(s, 2))).ok, true);
    assert.equal(await echo(before, 'still here'), 'still here');
    const after = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com' });
    assert.notEqual(after.getPeerCertificate().serialNumber, oldSerial);
    after.destroy();
    before.destroy();
  });

  test('a snapshot with a key that does not match its certificate is refused whole', async (t) => {
    const s = await setup(t);
    const edge = createTestEdge(t, io);
    const other = s.ca.issue({ cn: 'x', names: ['x.example.com'] });
    s.certs = s.certs.map((c) => (c.id === 'a' ? { ...c, key: other.key } : c));
    const result = await edge.apply(snapshot(s));
    assert.equal(result.ok, false);
    assert.match((result as { reason: string }).reason, /certificate "a" does not load/);
  });

  test('mTLS: a client with a certificate from the CA is accepted and its subject reaches the app; others are refused and counted', async (t) => {
    const clients = makeTestCa(t, 'Client CA');
    const s = await setup(t, { clientCa: clients.cert });
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(snapshot(s))).ok, true);
    const good = clients.issue({ cn: 'alice', client: true });
    const ok = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com', cert: good.cert, key: good.key });
    assert.equal(await echo(ok, 'admin'), 'admin');
    ok.destroy();
    const ssl = sslTlv(s.backend.headers[0]!)!;
    assert.equal(ssl.subs.get(0x22), 'alice');
    assert.equal(ssl.client & 0x02, 0x02);
    assert.equal(ssl.verify, 0);

    const refusedBy = async (options: tls.ConnectionOptions): Promise<void> => {
      await assert.rejects(async () => {
        const socket = await connect(s.port, { ca: s.ca.cert, servername: 'a.example.com', ...options });
        // TLS 1.3: the server checks the client's certificate after the client saw its Finished.
        await echo(socket, 'x');
      });
    };
    await refusedBy({});
    const stranger = makeTestCa(t, 'Other CA').issue({ cn: 'mallory', client: true });
    await refusedBy({ cert: stranger.cert, key: stranger.key });
    const metrics = edge.metrics().endpoints.find((e) => e.endpoint === 'web')!;
    assert.equal(metrics.refusedClientCert + metrics.refusedTlsHandshake, 2);
    assert.equal(s.backend.headers.length, 1);
  });

  test('httpRedirect answers any request with a 308 to https on the same host', async (t) => {
    const port = await freePort();
    const edge = createTestEdge(t, io);
    const ep = endpoint({ id: 'redirect', bind: [{ address: '127.0.0.1', port }], backends: [], options: { httpRedirect: true } });
    assert.equal((await edge.apply({ version: 1, endpoints: [ep] })).ok, true);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      let got = '';
      socket.on('data', (b) => (got += b.toString()));
      socket.on('end', () => resolve(got));
      socket.on('error', reject);
      socket.write('GET /path?q=1 HTTP/1.1\r\nHost: Shop.Example.com:80\r\nUser-Agent: t\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1\.1 308 /);
    assert.match(answer, /\r\nLocation: https:\/\/shop\.example\.com\/path\?q=1\r\n/);
  });
});
