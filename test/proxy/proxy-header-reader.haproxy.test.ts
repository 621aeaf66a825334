// Interop: the PROXY reader decodes what a real HAProxy (send-proxy-v2 with CRC32C and unique-id)
// sends to a backend, for clients over IPv4 and IPv6 loopback, and its LOCAL health checks.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProxyHeader, type ProxyHeader } from '../../proxy/proxy-header-reader.js';

interface Received {
  header: ProxyHeader;
  payload: string;
}

function haproxyPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

/** A port that was free a moment ago; HAProxy needs it spelled out in its config. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer().listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * A TCP server that decodes each connection's bytes once it is closed, however it ended, and
 * reports the result. HAProxy may reset its health-check connection right after the LOCAL header
 * (it did on every run under Node 24 and 26): that arrives as 'error' with no 'end', so decoding
 * waits for 'close', which follows both, with every byte read before it.
 */
async function startBackend(t: TestContext): Promise<{ port: number; next: (match: (r: Received) => boolean) => Promise<Received> }> {
  const seen: Received[] = [];
  const events = new EventEmitter();
  const server = net.createServer((socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      const bytes = Buffer.concat(chunks);
      const result = readProxyHeader(bytes);
      assert.equal(result.state, 'done', `HAProxy sent ${bytes.toString('hex')}: ${JSON.stringify(result)}`);
      if (result.state !== 'done') return;
      const received = { header: result.header, payload: bytes.subarray(result.consumed).toString() };
      seen.push(received);
      events.emit('received', received);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const next = (match: (r: Received) => boolean): Promise<Received> => {
    const already = seen.find(match);
    if (already) return Promise.resolve(already);
    return new Promise((resolve) => {
      const onReceived = (r: Received): void => {
        if (!match(r)) return;
        events.off('received', onReceived);
        resolve(r);
      };
      events.on('received', onReceived);
    });
  };
  return { port: (server.address() as net.AddressInfo).port, next };
}

async function startHaproxy(t: TestContext, binary: string, config: string, probePort: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pier-haproxy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawn(binary, ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  });
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) break;
    const up = await new Promise<boolean>((resolve) => {
      const probe = net.connect({ host: '127.0.0.1', port: probePort }, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on('error', () => resolve(false));
    });
    if (up) return;
    await sleep(50);
  }
  assert.fail(`haproxy did not start listening: ${stderr}`);
}

/** Sends `payload` through HAProxy from a client bound to `host`; resolves with the client's port. */
async function sendThrough(host: string, port: number, payload: string): Promise<number> {
  const client = net.connect({ host, port, localAddress: host });
  await once(client, 'connect');
  const localPort = client.localPort ?? 0;
  client.on('data', () => {});
  client.end(payload);
  await once(client, 'close');
  return localPort;
}

test('headers HAProxy sends with send-proxy-v2 decode to the client and bind addresses, CRC verified', { timeout: 30_000 }, async (t) => {
  const binary = haproxyPath();
  if (binary === null) {
    if (process.env.CI === 'true') assert.fail('haproxy is not installed: CI must install it (apt-get install haproxy)');
    t.skip('haproxy is not installed (apt-get install haproxy): interop not checked');
    return;
  }
  const backend = await startBackend(t);
  const v4Port = await freePort('127.0.0.1');
  const v6Port = await freePort('::1');
  const config = [
    'global',
    '  maxconn 100',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 10s',
    '  timeout server 10s',
    'frontend fe',
    `  bind 127.0.0.1:${v4Port}`,
    `  bind [::1]:${v6Port}`,
    '  unique-id-format %ci:%cp',
    '  default_backend be',
    'backend be',
    `  server s1 127.0.0.1:${backend.port} send-proxy-v2 proxy-v2-options crc32c,unique-id check inter 200ms`,
    '',
  ].join('\n');
  await startHaproxy(t, binary, config, v4Port);

  for (const [host, port] of [
    ['127.0.0.1', v4Port],
    ['::1', v6Port],
  ] as const) {
    const clientPort = await sendThrough(host, port, `hello from ${host}`);
    const { header, payload } = await backend.next((r) => r.header.source?.port === clientPort);
    assert.equal(payload, `hello from ${host}`, 'the payload follows the header untouched');
    assert.equal(header.version, 2);
    assert.equal(header.command, 'proxy');
    assert.equal(header.family, host === '::1' ? 'tcp6' : 'tcp4');
    assert.deepEqual(header.source, { address: host, port: clientPort });
    assert.deepEqual(header.destination, { address: host, port });
    assert.ok(header.tlvs.some((tlv) => tlv.type === 0x03 && tlv.value.length === 4), 'a CRC32C TLV was sent and verified');
    assert.equal(header.uniqueId?.toString(), `${host}:${clientPort}`);
  }

  const check = await backend.next((r) => r.header.command === 'local');
  assert.deepEqual(check.header, { version: 2, command: 'local', family: 'unspec', tlvs: [] });
  assert.equal(check.payload, '');
});
