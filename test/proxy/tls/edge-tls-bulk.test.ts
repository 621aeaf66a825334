// Bulk bytes both ways through a terminating edge, on each I/O mode: on handle i/o the cleartext
// side runs on node:tls's native TLSWrap (tcp-io/handle/tls-wrap-handle.ts), which takes one write
// at a time, so writes queue while one is in flight and the reader must be paused and resumed.
// A client that stops reading for a while forces that; every byte must arrive, in order, and the
// FINs must pass both ways. One certificate and no PROXY header: the fast path (no SNI callback,
// no TLV facts). The connection must end on its FINs: once both are in, the edge closes the client
// side as soon as its queue is written. On socket i/o the cleartext handle did not say when its
// queue emptied unless a write had returned false, so the end came only with the FIN timeout
// (30 s, logged as fin-timeout); the FIN timeout here is 20 s and the close line must say
// client-fin.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import tls from 'node:tls';
import type { EdgeConfig } from '../../../proxy/edge-config.js';
import type { TcpIo } from '../../../proxy/tcp-io/tcp-io.js';
import { eventually } from '../../support/eventually.js';
import { captureLog } from '../../support/log-capture.js';
import { freePort } from '../../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../../support/test-edge.js';
import { makeTestCa } from '../../support/tls-certs.js';

const SIZE = 4 * 1024 * 1024;

/** An echo backend that half-closes when the client does. */
async function startEcho(t: TestContext): Promise<{ address: string; port: number }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
}

forEachIo((io: TcpIo) => {
  test('4 MiB echoed through a terminating edge arrive whole and in order, with a reader that pauses, and FINs pass', async (t) => {
    const ca = makeTestCa(t);
    const backend = await startEcho(t);
    const port = await freePort();
    const snapshot: EdgeConfig = {
      version: 1,
      certificates: [{ id: 'one', names: ['bulk.example.com'], ...ca.issue({ cn: 'bulk.example.com', names: ['bulk.example.com'] }) }],
      endpoints: [endpoint({ id: 'bulk', bind: [{ address: '127.0.0.1', port }], backends: [backend], options: { tls: 'terminate', terminate: { certificates: ['one'] } } })],
    };
    const captured = captureLog();
    const edge = createTestEdge(t, io, { log: captured.log, connectionLogSampleRate: 1, finTimeoutMs: 20_000 });
    assert.equal((await edge.apply(snapshot)).ok, true);

    const payload = randomBytes(SIZE);
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'bulk.example.com', ca: ca.cert }, () => resolve(s));
      s.once('error', reject);
    });
    t.after(() => socket.destroy());
    const received = new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let got = 0;
      let paused = false;
      socket.on('data', (b: Buffer) => {
        chunks.push(b);
        got += b.length;
        if (!paused && got >= SIZE / 4) {
          // Stop reading for a while: the edge's writes toward us back up.
          paused = true;
          socket.pause();
          setTimeout(() => socket.resume(), 300);
        }
      });
      socket.once('end', () => resolve(Buffer.concat(chunks)));
      socket.once('error', reject);
    });
    // Written in uneven pieces, then our FIN: the echo backend answers with its own once done.
    for (let at = 0; at < SIZE; ) {
      const n = Math.min(SIZE - at, 1000 + ((at / 7) % 70_000));
      socket.write(payload.subarray(at, at + n));
      at += n;
    }
    socket.end();
    const echoed = await received;
    assert.equal(echoed.length, SIZE);
    assert.equal(createHash('sha256').update(echoed).digest('hex'), createHash('sha256').update(payload).digest('hex'));
    await eventually(() => captured.messages('connection closed').length === 1, 'the close line', 1000);
    const [closed] = captured.messages('connection closed');
    assert.equal(closed?.reason, 'client-fin', 'closed on its FINs, not by a timeout');
    assert.equal(closed?.bytesIn, SIZE);
    assert.equal(closed?.bytesOut, SIZE);
  });
});
