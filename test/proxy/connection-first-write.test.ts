// What a backend receives first, checked on the Connection's logic with recording handles (a pure
// unit test; the edge suites cover the same on real sockets): the PROXY header and the client's
// first bytes go in one write, whether the bytes came before the connect completed or in the same
// event-loop turn; with no byte by the end of that turn the header goes alone.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pino } from 'pino';
import { Connection, type ConnectionOptions } from '../../proxy/connection.js';
import { ConnectionLog } from '../../proxy/connection-log.js';
import type { ProxyProtocolMode } from '../../proxy/edge-config.js';
import { IdleSweeper } from '../../proxy/idle-sweeper.js';
import { readProxyHeader } from '../../proxy/proxy-header-reader.js';
import { buildRouteTable, RouteTable, type Route } from '../../proxy/route-table.js';
import type { ConnectDone, HandleHome, HandleOwner, TcpHandle, TcpIo } from '../../proxy/tcp-io/tcp-io.js';

class RecordingHandle implements TcpHandle {
  owner: HandleOwner | undefined;
  home: HandleHome | undefined;
  readonly writeQueueSize = 0;
  paused = true;
  closed = false;
  readonly writes: Buffer[][] = [];
  constructor(owner?: HandleOwner) {
    this.owner = owner;
  }
  readStart(): void {
    this.paused = false;
  }
  pause(): void {
    this.paused = true;
  }
  write(buf: Buffer): boolean {
    this.writes.push([Buffer.from(buf)]);
    return true;
  }
  writev(chunks: Buffer[]): boolean {
    this.writes.push(chunks.map((c) => Buffer.from(c)));
    return true;
  }
  shutdown(): void {}
  close(): void {
    this.closed = true;
    this.owner = undefined;
  }
  remoteAddress() {
    return { address: '198.51.100.7', port: 40000 };
  }
  localAddress() {
    return { address: '203.0.113.1', port: 443 };
  }
}

/** A TcpIo whose connects complete when the test says so. */
function recordingIo(): { io: TcpIo; backend: () => RecordingHandle; complete: () => void } {
  let handle: RecordingHandle | undefined;
  let done: ConnectDone | undefined;
  const io: TcpIo = {
    mode: 'socket',
    accept: () => undefined,
    connect(owner, _address, _port, onDone) {
      handle = new RecordingHandle(owner);
      done = onDone;
      return handle;
    },
  };
  return { io, backend: () => handle!, complete: () => done!(handle!, null) };
}

function setup(mode: ProxyProtocolMode, initial: Buffer | null = null) {
  const { io, backend, complete } = recordingIo();
  const config = {
    version: 1,
    endpoints: [{ id: 'e', app: 'a', bind: [{ address: '203.0.113.1', port: 443 }], proxyProtocol: mode, backends: [{ id: 'b', address: '127.0.0.1', port: 9 }] }],
  };
  const route = buildRouteTable(config, RouteTable.empty).table.endpoints.get('e') as Route;
  const log = pino({ level: 'silent' });
  const sweeper = new IdleSweeper(1000);
  const options: ConnectionOptions = { io, connectTimeoutMs: 5000, maxConnectAttempts: 3, finTimeoutMs: 30_000, ejection: { failures: 3, baseMs: 1000, maxMs: 30_000 }, sweeper, connectionLog: new ConnectionLog(log, 0), log };
  const client = new RecordingHandle();
  const origin = { source: client.remoteAddress(), destination: client.localAddress(), initial, serverName: null, listener: '203.0.113.1:443', startedAt: 0 };
  const connection = Connection.start(client, route, route.balancer.pick(undefined, 0)!, origin, options);
  return { client, backend, complete, connection, stop: () => sweeper.stop() };
}

/** The header at the start of `bytes` and what follows it. */
function split(bytes: Buffer): { source: string; rest: string } {
  const result = readProxyHeader(bytes);
  assert.equal(result.state, 'done');
  if (result.state !== 'done') throw new Error('unreachable');
  return { source: `${result.header.source?.address}:${result.header.source?.port}`, rest: bytes.subarray(result.consumed).toString() };
}

test('client bytes that arrive in the turn the connect completes leave with the header in one write', async (t) => {
  const c = setup('v2');
  t.after(c.stop);
  c.complete();
  assert.deepEqual(c.backend().writes, [], 'nothing is written until the client speaks or the turn ends');
  c.client.owner!.onData(c.client, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  assert.equal(c.backend().writes.length, 1);
  assert.equal(c.backend().writes[0]!.length, 1, 'one buffer');
  assert.deepEqual(split(c.backend().writes[0]![0]!), { source: '198.51.100.7:40000', rest: 'GET / HTTP/1.1\r\n\r\n' });
  await nextTurn();
  assert.equal(c.backend().writes.length, 1, 'the end of the turn sends nothing more');
});

test('with nothing from the client by the end of the turn, the header goes alone, then the bytes', async (t) => {
  const c = setup('v1');
  t.after(c.stop);
  c.complete();
  await nextTurn();
  assert.equal(c.backend().writes.length, 1);
  assert.equal(c.backend().writes[0]![0]!.toString(), 'PROXY TCP4 198.51.100.7 203.0.113.1 40000 443\r\n');
  c.client.owner!.onData(c.client, Buffer.from('EHLO x\r\n'));
  assert.equal(c.backend().writes.length, 2);
  assert.equal(c.backend().writes[1]![0]!.toString(), 'EHLO x\r\n');
});

test('bytes held while connecting (a ClientHello, bytes after a PROXY-in header) go with the header at once', (t) => {
  const c = setup('v2', Buffer.from('hello'));
  t.after(c.stop);
  c.client.owner!.onData(c.client, Buffer.from(' world'));
  c.complete();
  assert.equal(c.backend().writes.length, 1);
  const [first] = c.backend().writes;
  assert.deepEqual(split(Buffer.concat(first!)), { source: '198.51.100.7:40000', rest: 'hello world' });
});

test('without a PROXY header nothing is written at connect, and the client bytes go straight on', (t) => {
  const c = setup('none');
  t.after(c.stop);
  c.complete();
  assert.deepEqual(c.backend().writes, []);
  c.client.owner!.onData(c.client, Buffer.from('ping'));
  assert.deepEqual(c.backend().writes.map((w) => Buffer.concat(w).toString()), ['ping']);
});
