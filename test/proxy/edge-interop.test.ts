// Interop with real PROXY protocol peers (Debian's haproxy 2.6 and nginx 1.22): they read the
// headers the edge sends, and the edge reads the v2 header HAProxy sends. Missing peers skip the
// test, except in CI where they fail it.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { requirePeer, runPeer, waitForPort } from '../support/peer-binary.js';
import { startProxyRecorder } from '../support/proxy-recorder.js';
import { connectClient, freePortOnBoth } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-interop-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const both = (port: number) => [{ address: '127.0.0.1', port }, { address: '::1', port }];

/** Connects to host:port, sends `text`, and resolves with the first line received. */
function firstLine(host: string, port: number, text: string): Promise<{ line: string; local: { address: string; port: number } }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port }, () => socket.write(text));
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString();
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        resolve({ line: data.slice(0, nl), local: { address: socket.localAddress!, port: socket.localPort! } });
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed without a line (got ${JSON.stringify(data)})`)));
  });
}

forEachIo((io) => {
  test('HAProxy (accept-proxy) reads the edge v2 header with TLVs and passes the client on', async (t) => {
    const haproxy = requirePeer(t, 'haproxy');
    if (haproxy === null) return;
    const recorder = await startProxyRecorder(t);
    const [haPort, edgePort] = [await freePortOnBoth(), await freePortOnBoth()];
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 100',
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        'frontend fe',
        `  bind 127.0.0.1:${haPort} accept-proxy`,
        `  bind [::1]:${haPort} accept-proxy`,
        '  default_backend be',
        'backend be',
        `  server s1 127.0.0.1:${recorder.port} send-proxy`,
        '',
      ].join('\n'),
    );
    const peer = runPeer(t, haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')]);
    await waitForPort('127.0.0.1', haPort, `haproxy (${peer.output()})`);

    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({
          id: 'ha',
          bind: both(edgePort),
          backends: [{ address: '127.0.0.1', port: haPort }],
          proxyProtocol: 'v2',
          options: { proxyProtocolTlvs: ['crc32c', 'unique-id'] },
        }),
      ],
    });
    const v4 = await connectClient(t, '127.0.0.1', edgePort);
    assert.equal((await v4.roundTrip('through haproxy')).toString(), 'through haproxy');
    const v6 = await connectClient(t, '::1', edgePort);
    assert.equal((await v6.roundTrip('six')).toString(), 'six');
    const [h4, h6] = [await recorder.header(0), await recorder.header(1)];
    assert.deepEqual([h4.version, h4.source, h4.destination], [1, { address: '127.0.0.1', port: v4.socket.localPort }, { address: '127.0.0.1', port: edgePort }]);
    assert.deepEqual([h6.source, h6.destination], [{ address: '::1', port: v6.socket.localPort }, { address: '::1', port: edgePort }]);
  });

  test('nginx (listen proxy_protocol) reports the client and destination the edge saw, IPv4 and IPv6', async (t) => {
    const nginx = requirePeer(t, 'nginx');
    if (nginx === null) return;
    const [ngPort, edgePort] = [await freePortOnBoth(), await freePortOnBoth()];
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'nginx.conf'),
      [
        'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
        'worker_processes 1;',
        'events { worker_connections 64; }',
        'stream {',
        '  server {',
        `    listen 127.0.0.1:${ngPort} proxy_protocol;`,
        `    listen [::1]:${ngPort} proxy_protocol;`,
        '    return "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port\\n";',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    const peer = runPeer(t, nginx, ['-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid;`]);
    await waitForPort('127.0.0.1', ngPort, `nginx (${peer.output()})`);

    const edge = createTestEdge(t, io);
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'ng', bind: both(edgePort), backends: [{ address: '127.0.0.1', port: ngPort }], proxyProtocol: 'v2' })] });
    const v4 = await firstLine('127.0.0.1', edgePort, 'hi');
    assert.equal(v4.line, `127.0.0.1 ${v4.local.port} 127.0.0.1 ${edgePort}`);
    const v6 = await firstLine('::1', edgePort, 'hi');
    assert.equal(v6.line, `::1 ${v6.local.port} ::1 ${edgePort}`);
  });

  test('HAProxy send-proxy-v2 in front of the edge gives it the real client address', async (t) => {
    const haproxy = requirePeer(t, 'haproxy');
    if (haproxy === null) return;
    const recorder = await startProxyRecorder(t);
    const [haPort, edgePort] = [await freePortOnBoth(), await freePortOnBoth()];
    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({
          id: 'behind-ha',
          bind: [{ address: '127.0.0.1', port: edgePort }],
          backends: [recorder],
          proxyProtocol: 'v1',
          options: { acceptProxyProtocol: { trustedCidrs: ['127.0.0.1/32', '::1/128'] } },
        }),
      ],
    });
    const dir = await tempDir(t);
    await writeFile(
      join(dir, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 100',
        'defaults',
        '  mode tcp',
        '  timeout connect 5s',
        '  timeout client 30s',
        '  timeout server 30s',
        'frontend fe',
        `  bind 127.0.0.1:${haPort}`,
        `  bind [::1]:${haPort}`,
        '  default_backend be',
        'backend be',
        `  server edge 127.0.0.1:${edgePort} send-proxy-v2 proxy-v2-options crc32c,unique-id`,
        '',
      ].join('\n'),
    );
    const peer = runPeer(t, haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')]);
    await waitForPort('127.0.0.1', haPort, `haproxy (${peer.output()})`);
    // waitForPort's own connection reaches the edge too (HAProxy forwards it): it is header 0.
    const v4 = await connectClient(t, '127.0.0.1', haPort);
    assert.equal((await v4.roundTrip('via haproxy')).toString(), 'via haproxy');
    const v6 = await connectClient(t, '::1', haPort);
    assert.equal((await v6.roundTrip('via haproxy 6')).toString(), 'via haproxy 6');
    const sources = recorder.headers.map((h) => `${h.source?.address} ${h.source?.port}`);
    assert.ok(sources.includes(`127.0.0.1 ${v4.socket.localPort}`), sources.join(', '));
    assert.ok(sources.includes(`::1 ${v6.socket.localPort}`), sources.join(', '));
    assert.deepEqual(recorder.errors, []);
  });

  /** HAProxy's `show stat` over its admin socket, as rows of named fields. */
  function haproxyStats(socketPath: string): Promise<Record<string, string>[]> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ path: socketPath }, () => socket.write('show stat\n'));
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('error', reject);
      socket.on('close', () => {
        const [head, ...lines] = text.trim().split('\n');
        const names = (head ?? '').replace(/^# /, '').split(',');
        resolve(lines.map((line) => Object.fromEntries(line.split(',').map((v, i) => [names[i] ?? String(i), v]))));
      });
    });
  }

  test("HAProxy's health checks (a PROXY v2 LOCAL header, then a request and its answer) pass through the edge's PROXY-in listener", async (t) => {
    const haproxy = requirePeer(t, 'haproxy');
    if (haproxy === null) return;
    const echo = await startEchoBackend(t);
    const edgePort = await freePortOnBoth();
    const edge = createTestEdge(t, io);
    await edge.apply({
      version: 1,
      endpoints: [
        endpoint({
          id: 'checked',
          bind: [{ address: '127.0.0.1', port: edgePort }],
          backends: [echo],
          options: { acceptProxyProtocol: { trustedCidrs: ['127.0.0.1/32'] } },
        }),
      ],
    });
    const dir = await tempDir(t);
    const statsSocket = join(dir, 'haproxy.sock');
    await writeFile(
      join(dir, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 100',
        `  stats socket ${statsSocket} mode 600 level admin`,
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 30s',
        '  timeout server 30s',
        '  timeout check 2s',
        'backend be',
        // The check is a real exchange through the edge to the echo backend: it passes only if the
        // edge accepts the LOCAL header HAProxy puts in front of every check connection.
        '  option tcp-check',
        '  tcp-check connect default',
        '  tcp-check send PING\\r\\n',
        '  tcp-check expect string PING',
        `  server edge 127.0.0.1:${edgePort} send-proxy-v2 check inter 100 rise 2 fall 1`,
        '',
      ].join('\n'),
    );
    const peer = runPeer(t, haproxy, ['-db', '-f', join(dir, 'haproxy.cfg')]);
    let row: Record<string, string> | undefined;
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      row = (await haproxyStats(statsSocket).catch(() => [])).find((r) => r.pxname === 'be' && r.svname === 'edge');
      if (row?.check_status === 'L7OK' && row.status === 'UP' && Number(row.chkfail) === 0 && echo.accepted >= 3) break;
    }
    assert.equal(row?.check_status, 'L7OK', `HAProxy's check of the edge: ${row?.last_chk} (edge listener: ${JSON.stringify(edge.metrics().listeners[0])})\n${peer.output()}`);
    assert.equal(row?.status, 'UP');
    assert.equal(Number(row?.chkfail), 0, 'no check failed');
    assert.ok(echo.accepted >= 3, `the checks reached the backend (${echo.accepted})`);
    const listener = edge.metrics().listeners[0]!;
    assert.equal(listener.refusedProxyHeader, 0);
    assert.equal(listener.refusedUntrustedProxy, 0);
  });
});
