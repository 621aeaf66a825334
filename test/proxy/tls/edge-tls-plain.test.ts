// tls: terminate on an endpoint with one certificate and no client CA: with handle i/o the edge
// runs that handshake on node's TLSWrap without a tls.TLSSocket (tcp-io/handle/tls-wrap-handshake.ts),
// socket i/o through node:tls. Either way: SNI, ALPN and SSL TLVs reach the app, tickets resume
// across edges sharing a seed, broken or abandoned handshakes are refused and counted (and their
// connections closed), and a TLS 1.2 client's renegotiation is refused (as on endpoints with
// several certificates or mTLS, which take the TLSSocket path on either i/o).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import type { EdgeConfig } from '../../../proxy/edge-config.js';
import type { Edge } from '../../../proxy/edge.js';
import type { TcpIo } from '../../../proxy/tcp-io/tcp-io.js';
import { createTestEdge, forEachIo } from '../../support/test-edge.js';
import { connectTls as connect, echoTls as echo } from '../../support/tls-client.js';
import { startTerminatingEndpoint, type TerminatingEndpoint } from '../../support/tls-endpoint.js';
import { sslTlv } from '../../support/tlv-backend.js';

interface Setup extends TerminatingEndpoint {
  snapshot: EdgeConfig;
}

/** One certificate (the plain case), several (an SNI callback) or one with a client CA (mTLS). */
type Kind = 'one' | 'several' | 'mtls';

async function setup(t: TestContext, alpn: string[] | undefined = ['h2', 'http/1.1'], kind: Kind = 'one'): Promise<Setup> {
  const certs = [{ id: 'only', names: ['only.example.com'] }];
  if (kind === 'several') certs.push({ id: 'other', names: ['other.example.com'] });
  // mTLS trusts client certificates of the endpoint's own test CA, known only once it is made.
  const s = await startTerminatingEndpoint(t, certs, alpn === undefined ? {} : { alpn });
  if (kind === 'mtls') s.ep.terminate = { ...s.ep.terminate!, clientCa: s.ca.cert };
  return { ...s, snapshot: { version: 1, endpoints: [s.ep], certificates: s.certs } };
}

/** Waits (bounded) until `check` holds. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(check(), what);
}

const web = (edge: Edge) => edge.metrics().endpoints.find((e) => e.endpoint === 'web')!;
const refused = (edge: Edge): number => web(edge).refusedTlsHandshake;
const active = (edge: Edge): number => web(edge).connectionsActive;

forEachIo((io: TcpIo) => {
  test('one certificate: TLS 1.3 and 1.2 clients talk to the app, which gets the SNI, ALPN and SSL TLVs', async (t) => {
    const s = await setup(t);
    const edge = createTestEdge(t, io);
    assert.equal((await edge.apply(s.snapshot)).ok, true);
    const modern = await connect(s.port, { ca: s.ca.cert, servername: 'only.example.com', ALPNProtocols: ['http/1.1'] });
    assert.equal(modern.alpnProtocol, 'http/1.1');
    assert.equal(await echo(modern, 'over 1.3'), 'over 1.3');
    modern.destroy();
    const h = s.backend.headers[0]!;
    assert.equal(h.tlvs.find((x) => x.type === 0x02)?.value.toString(), 'only.example.com');
    assert.equal(h.tlvs.find((x) => x.type === 0x01)?.value.toString(), 'http/1.1');
    const ssl = sslTlv(h)!;
    assert.equal(ssl.client, 0x01);
    assert.equal(ssl.verify, 0);
    assert.equal(ssl.subs.get(0x21), 'TLSv1.3');
    assert.match(ssl.subs.get(0x23)!, /^TLS_AES_|^TLS_CHACHA20/);

    // Without SNI nor ALPN, TLS 1.2: the same certificate, no ALPN or authority TLV.
    const old = await connect(s.port, { ca: s.ca.cert, checkServerIdentity: () => undefined, maxVersion: 'TLSv1.2' });
    assert.equal(old.getProtocol(), 'TLSv1.2');
    assert.equal(old.getPeerCertificate().subject.CN, 'only.example.com');
    assert.equal(await echo(old, 'over 1.2'), 'over 1.2');
    old.destroy();
    const h2 = s.backend.headers.at(-1)!;
    assert.equal(h2.tlvs.find((x) => x.type === 0x02), undefined);
    assert.equal(h2.tlvs.find((x) => x.type === 0x01), undefined);
    assert.equal(sslTlv(h2)!.subs.get(0x21), 'TLSv1.2');
    assert.match(sslTlv(h2)!.subs.get(0x23)!, /^ECDHE-/);
    assert.deepEqual(s.backend.errors, []);
  });

  test('one certificate: a TLS 1.2 ticket from one edge resumes on another with the same seed', async (t) => {
    const s = await setup(t, undefined);
    const seed = Buffer.alloc(32, 3);
    const first = createTestEdge(t, io, { ticketSeed: seed });
    assert.equal((await first.apply(s.snapshot)).ok, true);
    const session = await new Promise<Buffer>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: s.port, ca: s.ca.cert, servername: 'only.example.com', maxVersion: 'TLSv1.2' });
      socket.once('session', (sess: Buffer) => {
        resolve(sess);
        socket.destroy();
      });
      socket.once('error', reject);
    });
    await first.close();
    const second = createTestEdge(t, io, { ticketSeed: seed });
    assert.equal((await second.apply(s.snapshot)).ok, true);
    const again = await connect(s.port, { ca: s.ca.cert, servername: 'only.example.com', maxVersion: 'TLSv1.2', session });
    assert.equal(again.isSessionReused(), true);
    assert.equal(await echo(again, 'resumed'), 'resumed');
    again.destroy();
  });

  test('one certificate: a garbage hello, a client gone mid-handshake and one that never speaks are refused and counted', async (t) => {
    const s = await setup(t);
    const edge = createTestEdge(t, io, { helloTimeoutMs: 300 });
    assert.equal((await edge.apply(s.snapshot)).ok, true);
    const closedByEdge = async (send: Buffer | null, endAfter: boolean): Promise<void> => {
      const raw = net.connect({ host: '127.0.0.1', port: s.port });
      t.after(() => raw.destroy());
      raw.on('error', () => undefined);
      raw.resume();
      await once(raw, 'connect');
      if (send !== null) raw.write(send);
      if (endAfter) raw.end();
      await once(raw, 'close');
    };
    // Not TLS at all: OpenSSL refuses the record and the edge closes.
    await closedByEdge(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), false);
    await eventually(() => refused(edge) === 1, 'the garbage hello is counted');
    // The start of a real hello, then the client's FIN.
    await closedByEdge(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), true);
    await eventually(() => refused(edge) === 2, 'the abandoned handshake is counted');
    // Nothing at all: the hello deadline closes it.
    await closedByEdge(null, false);
    await eventually(() => refused(edge) === 3, 'the silent client is counted');
    assert.equal(s.backend.headers.length, 0, 'no backend connection for any of them');
    // The edge still serves.
    const ok = await connect(s.port, { ca: s.ca.cert, servername: 'only.example.com' });
    assert.equal(await echo(ok, 'still here'), 'still here');
    ok.destroy();
  });

  for (const kind of ['one', 'several', 'mtls'] as const) {
    const what = { one: 'one certificate', several: 'several certificates', mtls: 'mTLS' }[kind];
    test(`${what}: a TLS 1.2 client's renegotiation is refused and its connection ends, after ordinary traffic worked`, async (t) => {
      const s = await setup(t, undefined, kind);
      const edge = createTestEdge(t, io);
      assert.equal((await edge.apply(s.snapshot)).ok, true);
      const client = kind === 'mtls' ? s.ca.issue({ cn: 'alice', client: true }) : {};
      const socket = await connect(s.port, { ca: s.ca.cert, servername: 'only.example.com', maxVersion: 'TLSv1.2', ...client });
      t.after(() => socket.destroy());
      const errors: string[] = [];
      socket.on('error', (err: NodeJS.ErrnoException) => errors.push(err.code ?? err.message));
      assert.equal(socket.getProtocol(), 'TLSv1.2');
      assert.equal(await echo(socket, 'before'), 'before');
      // node calls back on 'secure' only; a failed renegotiation is an 'error' and a 'close'.
      const renegotiated = (): Promise<'done' | 'closed'> =>
        new Promise((resolve) => {
          if (socket.destroyed) return resolve('closed');
          const onClose = (): void => resolve('closed');
          socket.once('close', onClose);
          const started = socket.renegotiate({ rejectUnauthorized: false }, () => {
            socket.off('close', onClose);
            resolve('done');
          });
          if (!started) resolve('closed');
        });
      // The edge answers the new hello with a no_renegotiation alert (no handshake); node's client,
      // like OpenSSL's, then ends the connection. Whatever the client tries next is not a handshake.
      const outcomes: string[] = [];
      for (let i = 0; i < 3; i++) outcomes.push(await renegotiated());
      assert.deepEqual(outcomes, ['closed', 'closed', 'closed'], 'no renegotiation completed');
      assert.deepEqual(errors, ['ERR_SSL_NO_RENEGOTIATION'], 'the edge refused it with a no_renegotiation alert');
      await eventually(() => active(edge) === 0, 'the edge ended the connection (and the one to the app)');
    });
  }
});
