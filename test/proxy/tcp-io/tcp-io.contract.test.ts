// The TcpIo contract (proxy/tcp-io/tcp-io.ts), run against every implementation: what the data
// plane relies on, checked directly on real loopback sockets, so a new implementation that passes
// here and in the edge suites can be trusted.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import type { HandleHome, HandleOwner, TcpHandle, TcpIo } from '../../../proxy/tcp-io/tcp-io.js';
import { eventually } from '../../support/eventually.js';
import { freePort } from '../../support/tcp-client.js';
import { forEachIo } from '../../support/test-edge.js';

/** An owner that records everything its handle reports. */
class Recorder implements HandleOwner {
  readonly borrows = false;
  readonly data: Buffer[] = [];
  ended = false;
  errors: string[] = [];
  flushed = 0;
  onData(_h: TcpHandle, buf: Buffer): void {
    this.data.push(Buffer.from(buf));
  }
  onEnd(): void {
    this.ended = true;
  }
  onError(_h: TcpHandle, code: string): void {
    this.errors.push(code);
  }
  onFlushed(): void {
    this.flushed++;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.data);
  }
}

/** A listening server whose accepted connections arrive as handles of `io`. */
async function acceptOn(t: TestContext, io: TcpIo): Promise<{ port: number; next: () => Promise<TcpHandle> }> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
  const handles: TcpHandle[] = [];
  const waiting: ((h: TcpHandle) => void)[] = [];
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  io.accept(
    server,
    (h) => {
      const w = waiting.shift();
      if (w !== undefined) w(h);
      else handles.push(h);
    },
    () => undefined,
  );
  t.after(() => {
    for (const h of handles) h.close();
    server.close();
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => {
      const h = handles.shift();
      return h !== undefined ? Promise.resolve(h) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** A plain net.Socket peer. */
async function peer(t: TestContext, port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  t.after(() => socket.destroy());
  return socket;
}

/** Connects a handle of `io` to a fresh plain server; resolves with both ends. */
async function connected(t: TestContext, io: TcpIo, owner: HandleOwner): Promise<{ handle: TcpHandle; remote: net.Socket }> {
  let remote: net.Socket | undefined;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    remote = s;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    remote?.destroy();
    server.close();
  });
  const result = await new Promise<{ handle: TcpHandle; error: string | null }>((resolve) => {
    io.connect(owner, '127.0.0.1', (server.address() as net.AddressInfo).port, (handle, error) => resolve({ handle, error }));
  });
  assert.equal(result.error, null);
  t.after(() => result.handle.close());
  await eventually(() => remote !== undefined, 'the server to accept');
  return { handle: result.handle, remote: remote! };
}

forEachIo((io) => {
  test('an accepted handle reads nothing before readStart, then everything; addresses are known', async (t) => {
    const server = await acceptOn(t, io);
    const client = await peer(t, server.port);
    client.write('early bytes');
    const handle = await server.next();
    const owner = new Recorder();
    handle.owner = owner;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(owner.data.length, 0, 'no data before readStart');
    handle.readStart();
    await eventually(() => owner.bytes.toString() === 'early bytes', 'the early bytes');
    assert.deepEqual(handle.remoteAddress(), { address: '127.0.0.1', port: client.localPort });
    assert.deepEqual(handle.localAddress(), { address: '127.0.0.1', port: server.port });
  });

  test('connect reports a refusal asynchronously with its code', async () => {
    const port = await freePort();
    let sync = true;
    const done = new Promise<{ error: string | null; handle: TcpHandle }>((resolve) => {
      const returned = io.connect(new Recorder(), '127.0.0.1', port, (handle, error) => {
        assert.equal(handle, returned);
        resolve({ error, handle });
      });
    });
    sync = false;
    const { error, handle } = await done;
    assert.equal(sync, false);
    assert.equal(error, 'ECONNREFUSED');
    handle.close();
  });

  test('write and writev deliver bytes in order; shutdown sends a FIN while reading goes on', async (t) => {
    const owner = new Recorder();
    const { handle, remote } = await connected(t, io, owner);
    handle.readStart();
    const got: Buffer[] = [];
    let remoteEnded = false;
    remote.on('data', (b: Buffer) => got.push(b));
    remote.on('end', () => (remoteEnded = true));
    handle.write(Buffer.from('one '));
    handle.writev([Buffer.from('two '), Buffer.from('three')]);
    handle.shutdown();
    await eventually(() => remoteEnded, 'the FIN to reach the peer');
    assert.equal(Buffer.concat(got).toString(), 'one two three');
    remote.end('answer after our FIN');
    await eventually(() => owner.ended, 'the peer FIN');
    assert.equal(owner.bytes.toString(), 'answer after our FIN');
    assert.deepEqual(owner.errors, []);
  });

  test('pause holds reads back without losing any; readStart resumes', async (t) => {
    const owner = new Recorder();
    const { handle, remote } = await connected(t, io, owner);
    handle.readStart();
    remote.write('a');
    await eventually(() => owner.bytes.length === 1, 'the first byte');
    handle.pause();
    assert.equal(handle.paused, true);
    remote.write('bcd');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(owner.bytes.toString(), 'a', 'nothing while paused');
    handle.readStart();
    assert.equal(handle.paused, false);
    await eventually(() => owner.bytes.toString() === 'abcd', 'the rest after resuming');
  });

  test('a write the kernel cannot take returns false, queues, and onFlushed follows once it drains', async (t) => {
    const owner = new Recorder();
    const { handle, remote } = await connected(t, io, owner);
    remote.pause();
    const block = Buffer.alloc(256 * 1024, 7);
    let writes = 0;
    // Bounded: 64 MiB at most; a non-reading peer fills the kernel buffers long before that.
    while (writes < 256 && handle.write(block)) writes++;
    assert.ok(writes < 256, 'some write returned false');
    assert.ok(handle.writeQueueSize > 0, 'bytes are queued');
    assert.equal(owner.flushed, 0);
    let received = 0;
    remote.on('data', (b: Buffer) => (received += b.length));
    remote.resume();
    await eventually(() => owner.flushed > 0, 'onFlushed', 500, 10);
    assert.equal(handle.writeQueueSize, 0);
    await eventually(() => received === (writes + 1) * block.length, 'every byte at the peer', 500, 10);
  });

  test('a reset by the peer is reported as ECONNRESET', async (t) => {
    const owner = new Recorder();
    const { handle, remote } = await connected(t, io, owner);
    handle.readStart();
    remote.resetAndDestroy();
    await eventually(() => owner.errors.length > 0 || owner.ended, 'the reset to be reported');
    assert.deepEqual(owner.errors, ['ECONNRESET']);
  });

  test('close tells the home once, drops the owner, and no event follows', async (t) => {
    const server = await acceptOn(t, io);
    const client = await peer(t, server.port);
    const handle = await server.next();
    let closedCount = 0;
    const home: HandleHome = { handleClosed: () => closedCount++ };
    const owner = new Recorder();
    handle.home = home;
    handle.owner = owner;
    handle.readStart();
    handle.close();
    handle.close();
    assert.equal(closedCount, 1);
    assert.equal(handle.owner, undefined);
    let clientSawIt = false;
    client.on('end', () => (clientSawIt = true));
    client.on('close', () => (clientSawIt = true));
    client.write('after close');
    await eventually(() => clientSawIt, 'the peer to see the close');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(owner.data.length, 0);
    assert.deepEqual(owner.errors, []);
  });
});
