// tls-alpn-01 at the edge (RFC 8737): a hello offering `acme-tls/1` for a name with a pending
// challenge of the endpoint's app gets the challenge certificate and `acme-tls/1`, and nothing
// reaches the app; other hellos still get the app's certificate; an endpoint with no certificate
// yet answers validations only; another app's challenge is not answered.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import type { EdgeConfig, EndpointConfig } from '../../../proxy/edge-config.js';
import type { TcpIo } from '../../../proxy/tcp-io/tcp-io.js';
import { freePort } from '../../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../../support/test-edge.js';
import { makeTestCa } from '../../support/tls-certs.js';

async function countingBackend(t: TestContext): Promise<{ address: string; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.on('error', () => undefined);
    s.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

function hello(port: number, options: tls.ConnectionOptions): Promise<{ subject: string; alpn: string | false | null } | Error> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      resolve({ subject: String(s.getPeerCertificate().subject.CN), alpn: s.alpnProtocol });
      s.destroy();
    });
    s.once('error', (err) => resolve(err));
  });
}

forEachIo((io: TcpIo) => {
  test('answers acme-tls/1 hellos with the pending challenge certificate, others with the app certificate', async (t) => {
    const ca = makeTestCa(t);
    const backend = await countingBackend(t);
    const port = await freePort();
    const served = ca.issue({ cn: 'served', names: ['a.example.com'] });
    const challenge = ca.issue({ cn: 'challenge', names: ['a.example.com'] });
    const foreign = ca.issue({ cn: 'foreign', names: ['b.example.com'] });
    const ep = (certificates: string[]): EndpointConfig =>
      endpoint({ id: 'web', bind: [{ address: '127.0.0.1', port }], backends: [backend], options: { tls: 'terminate', terminate: { certificates, alpn: ['http/1.1'] } } });
    const edge = createTestEdge(t, io);
    const acmeChallenges = [
      { app: 'test', name: 'a.example.com', ...challenge },
      { app: 'other', name: 'b.example.com', ...foreign },
    ];
    const withCert: EdgeConfig = { version: 1, endpoints: [ep(['c1'])], certificates: [{ id: 'c1', names: ['a.example.com'], ...served }], acmeChallenges };
    assert.equal((await edge.apply(withCert)).ok, true);

    assert.deepEqual(await hello(port, { servername: 'a.example.com', ALPNProtocols: ['acme-tls/1'] }), { subject: 'challenge', alpn: 'acme-tls/1' });
    // A forwarded connection that has come back closed by the app: the validation before it was not forwarded.
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'a.example.com' }, () => s.resume());
      s.once('close', () => resolve());
      s.once('error', reject);
    });
    assert.equal(backend.accepted(), 1);
    assert.deepEqual(await hello(port, { servername: 'a.example.com', ALPNProtocols: ['http/1.1'] }), { subject: 'served', alpn: 'http/1.1' });
    assert.deepEqual(await hello(port, { servername: 'a.example.com' }), { subject: 'served', alpn: false });
    // Another app's challenge is not this endpoint's to answer.
    const other = await hello(port, { servername: 'b.example.com', ALPNProtocols: ['acme-tls/1'] });
    assert.ok(other instanceof Error || other.subject !== 'foreign');
    const beforeEmpty = backend.accepted();

    // No certificate yet (ACME order in progress): validations are answered, other hellos refused.
    assert.equal((await edge.apply({ version: 2, endpoints: [ep([])], acmeChallenges })).ok, true);
    assert.deepEqual(await hello(port, { servername: 'a.example.com', ALPNProtocols: ['acme-tls/1'] }), { subject: 'challenge', alpn: 'acme-tls/1' });
    assert.ok((await hello(port, { servername: 'a.example.com', ALPNProtocols: ['http/1.1'] })) instanceof Error);
    assert.ok(beforeEmpty >= 1);
  });
});
