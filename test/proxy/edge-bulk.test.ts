// Bulk transfers through the edge under backpressure: the backend side reads into reused buffers,
// so these prove that no byte is overwritten before it was written out, in either direction.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

const MiB = 1024 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Sends `payload` in 64 KiB writes that respect backpressure, then FIN. */
function send(socket: net.Socket, payload: Buffer): void {
  let offset = 0;
  const next = (): void => {
    while (offset < payload.length) {
      const chunk = payload.subarray(offset, offset + 64 * 1024);
      offset += chunk.length;
      if (!socket.write(chunk)) {
        socket.once('drain', next);
        return;
      }
    }
    socket.end();
  };
  next();
}

/**
 * Reads to the FIN like a slow consumer: stops for `pauseMs` after every MiB, long enough for
 * loopback buffers to fill so the edge's writes toward this socket back up. Resolves with the hash.
 */
function slowRead(socket: net.Socket, pauseMs: number): Promise<{ hash: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  let sincePause = 0;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      length += chunk.length;
      sincePause += chunk.length;
      if (sincePause >= MiB) {
        sincePause = 0;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
    socket.on('end', () => resolve({ hash: hash.digest('hex'), length }));
    socket.on('error', reject);
  });
}

interface Transfer {
  toBackend: Buffer;
  toClient: Buffer;
}

/** A backend that reads slowly what each connection sends and sends back its own payload. */
async function startBulkBackend(t: TestContext, transfers: Transfer[]): Promise<{ port: number; received: Promise<{ hash: string; length: number }>[] }> {
  const received: Promise<{ hash: string; length: number }>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    // The client's first 4 bytes say which transfer this connection carries.
    const onReadable = (): void => {
      const id = socket.read(4) as Buffer | null;
      if (id === null) return; // fewer than 4 bytes so far
      socket.off('readable', onReadable);
      const transfer = transfers[id.readUInt32BE(0)];
      if (transfer === undefined) {
        socket.destroy();
        return;
      }
      received.push(slowRead(socket, 10));
      socket.resume();
      send(socket, transfer.toClient);
    };
    socket.on('readable', onReadable);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, received };
}

async function transferThrough(port: number, index: number, transfer: Transfer): Promise<{ hash: string; length: number }> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const id = Buffer.alloc(4);
  id.writeUInt32BE(index, 0);
  socket.write(id);
  const read = slowRead(socket, 10);
  // Our own bytes must be flushed before the socket goes: the backend may finish first.
  const flushed = new Promise((resolve) => socket.once('finish', resolve));
  send(socket, transfer.toBackend);
  try {
    const [result] = await Promise.all([read, flushed]);
    return result;
  } finally {
    socket.destroy();
  }
}

forEachIo((io) => {
  test('32 MiB each way arrive intact through the edge with slow readers on both sides', async (t) => {
    const transfer = { toBackend: randomBytes(32 * MiB), toClient: randomBytes(32 * MiB) };
    const backend = await startBulkBackend(t, [transfer]);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'bulk', bind: [{ address: '127.0.0.1', port }], backends: [{ address: '127.0.0.1', port: backend.port }] })] });

    const atClient = await transferThrough(port, 0, transfer);
    assert.equal(atClient.length, transfer.toClient.length);
    assert.equal(atClient.hash, sha256(transfer.toClient), 'backend -> client bytes intact');
    const atBackend = await backend.received[0]!;
    assert.equal(atBackend.length, transfer.toBackend.length);
    assert.equal(atBackend.hash, sha256(transfer.toBackend), 'client -> backend bytes intact');
  });

  test('concurrent bulk connections each get their own bytes back intact', async (t) => {
    const transfers = Array.from({ length: 6 }, () => ({ toBackend: randomBytes(4 * MiB), toClient: randomBytes(4 * MiB) }));
    const backend = await startBulkBackend(t, transfers);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'bulk', bind: [{ address: '127.0.0.1', port }], backends: [{ address: '127.0.0.1', port: backend.port }] })] });

    const results = await Promise.all(transfers.map((transfer, i) => transferThrough(port, i, transfer)));
    results.forEach((r, i) => assert.equal(r.hash, sha256(transfers[i]!.toClient), `connection ${i}, backend -> client`));
    const atBackend = await Promise.all(backend.received);
    assert.deepEqual(atBackend.map((r) => r.length), transfers.map((tr) => tr.toBackend.length));
    assert.deepEqual(atBackend.map((r) => r.hash).sort(), transfers.map((tr) => sha256(tr.toBackend)).sort());
  });
});
