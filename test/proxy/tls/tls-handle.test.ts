// The cleartext side of a TLSSocket as a TcpHandle (proxy/tls/tls-handle.ts), over a real TLS
// connection on loopback: its owner hears onFlushed after every write that left bytes queued,
// also when the write returned true. A connection whose both FINs are in waits for that to close
// the side it still owes bytes; without it the close came only with the FIN timeout (30 s).

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import type { PeerAddress } from '../../../proxy/peer-address.js';
import type { HandleOwner, TcpHandle } from '../../../proxy/tcp-io/tcp-io.js';
import { TlsHandle } from '../../../proxy/tls/tls-handle.js';
import { makeTestCa } from '../../support/tls-certs.js';

test('onFlushed follows a write that returned true but left bytes queued, and the queue is then empty', async (t) => {
  const ca = makeTestCa(t);
  const { cert, key } = ca.issue({ cn: 'flush.example.com', names: ['flush.example.com'] });
  const context = tls.createSecureContext({ cert, key });
  const accepted = new Promise<tls.TLSSocket>((resolve) => {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
      secure.once('secure', () => resolve(secure));
    });
    server.listen(0, '127.0.0.1');
    t.after(() => server.close());
    server.once('listening', () => {
      const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, servername: 'flush.example.com', ca: ca.cert });
      client.on('data', () => undefined);
      client.on('error', () => undefined);
      t.after(() => client.destroy());
    });
  });
  const socket = await accepted;
  // The TCP handle beneath is asked only for addresses, which this test does not use.
  const raw = { remoteAddress: (): PeerAddress | null => null, localAddress: (): PeerAddress | null => null } as unknown as TcpHandle;
  const handle = new TlsHandle(socket, raw);
  t.after(() => handle.close());
  let flushed = 0;
  let queuedAtFlush = -1;
  const owner: HandleOwner = {
    borrows: false,
    onData: () => undefined,
    onEnd: () => undefined,
    onError: (_h, code) => assert.fail(`unexpected error ${code}`),
    onFlushed: (h) => {
      flushed++;
      queuedAtFlush = h.writeQueueSize;
    },
  };
  handle.owner = owner;
  for (let round = 1; round <= 5; round++) {
    // Small enough for the stream to take without asking the writer to wait.
    const ok = handle.write(Buffer.alloc(1000, round));
    assert.equal(ok, true, 'a small write is taken without backpressure');
    assert.ok(handle.writeQueueSize > 0, 'the TLS stream writes asynchronously: the bytes are queued after write()');
    const until = Date.now() + 10_000;
    while (flushed < round && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    assert.equal(flushed, round, `round ${round}: the owner heard that the queue ran empty`);
    assert.equal(queuedAtFlush, 0);
  }
  // writev: the same.
  assert.equal(handle.writev([Buffer.alloc(500, 1), Buffer.alloc(500, 2)]), true);
  const until = Date.now() + 10_000;
  while (flushed < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(flushed, 6);
});
