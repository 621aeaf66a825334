// readClientHello against ClientHellos sent by real TLS clients (node:tls, openssl s_client) to a
// plain TCP server that only records bytes, fed whole, split into segments and rebuilt into records.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import { test, type TestContext } from 'node:test';
import { readClientHello, type HelloResult } from '../../proxy/client-hello.js';

/**
 * The ClientHello records a client sends first. Completeness is judged here by an independent,
 * minimal record walk (not by the module under test), so the capture is exactly the hello.
 */
async function captureHello(t: TestContext, connect: (port: number) => () => void): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let resolveHello!: (hello: Buffer) => void;
  const hello = new Promise<Buffer>((resolve) => (resolveHello = resolve));
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      const end = helloEnd(bytes);
      if (end !== null) {
        resolveHello(bytes.subarray(0, end));
        socket.destroy();
      }
    });
  });
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = connect((server.address() as net.AddressInfo).port);
  t.after(stop);
  return hello;
}

/** Where the records carrying the first handshake message end, or null while incomplete. */
function helloEnd(bytes: Buffer): number | null {
  let offset = 0;
  let payload = Buffer.alloc(0);
  while (offset + 5 <= bytes.length) {
    const end = offset + 5 + bytes.readUInt16BE(offset + 3);
    if (end > bytes.length) return null;
    payload = Buffer.concat([payload, bytes.subarray(offset + 5, end)]);
    offset = end;
    if (payload.length >= 4 && payload.length >= 4 + payload.readUIntBE(1, 3)) return offset;
  }
  return null;
}

function nodeClient(options: tls.ConnectionOptions): (port: number) => () => void {
  return (port) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.on('error', () => {});
    return () => socket.destroy();
  };
}

function opensslClient(args: string[]): (port: number) => () => void {
  return (port) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
    child.on('error', () => {});
    return () => child.kill();
  };
}

function opensslAvailable(t: TestContext): boolean {
  if (spawnSync('openssl', ['version']).status === 0) return true;
  if (process.env.CI === 'true') assert.fail('openssl is required in CI for the s_client ClientHello tests');
  t.skip('openssl is not installed');
  return false;
}

/** The hello's handshake message (records stripped), to rebuild into other record layouts. */
function handshakeOf(hello: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < hello.length; ) {
    const end = offset + 5 + hello.readUInt16BE(offset + 3);
    parts.push(hello.subarray(offset + 5, end));
    offset = end;
  }
  return Buffer.concat(parts);
}

function record(payload: Buffer, type = 22): Buffer {
  const header = Buffer.from([type, 3, 1, 0, 0]);
  header.writeUInt16BE(payload.length, 3);
  return Buffer.concat([header, payload]);
}

/** Feeds `bytes` as a connection would deliver them in `segment`-byte reads, checking each step. */
function feedInSegments(bytes: Buffer, segment: number): HelloResult {
  for (let end = segment; end < bytes.length; end += segment) {
    const partial = readClientHello(bytes.subarray(0, end));
    assert.deepEqual(partial, { state: 'incomplete' }, `after ${end} of ${bytes.length} bytes in ${segment}-byte segments`);
  }
  return readClientHello(bytes);
}

function replaceAscii(bytes: Buffer, from: string, to: string): Buffer {
  assert.equal(from.length, to.length);
  const at = bytes.indexOf(from, 0, 'latin1');
  assert.ok(at >= 0, `"${from}" not found in the hello`);
  const copy = Buffer.from(bytes);
  copy.write(to, at, 'latin1');
  return copy;
}

test('a node:tls ClientHello yields its server name and ALPN list', async (t) => {
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com', ALPNProtocols: ['h2', 'http/1.1'] }));
  assert.deepEqual(readClientHello(hello), {
    state: 'done',
    serverName: 'a.example.com',
    alpn: ['h2', 'http/1.1'],
    consumedRecords: hello.length,
  });
});

test('a ClientHello without SNI yields a null server name', async (t) => {
  // node:tls sends no server_name when connecting to an IP address without `servername`.
  const hello = await captureHello(t, nodeClient({}));
  assert.deepEqual(readClientHello(hello), { state: 'done', serverName: null, alpn: [], consumedRecords: hello.length });
});

test('an openssl s_client ClientHello yields its server name', async (t) => {
  if (!opensslAvailable(t)) return;
  const hello = await captureHello(t, opensslClient(['-servername', 'b.example.com', '-alpn', 'h2']));
  assert.deepEqual(readClientHello(hello), {
    state: 'done',
    serverName: 'b.example.com',
    alpn: ['h2'],
    consumedRecords: hello.length,
  });
  const none = await captureHello(t, opensslClient(['-noservername']));
  assert.equal((readClientHello(none) as { serverName?: unknown }).serverName, null);
});

test('a large ClientHello fed in segments of 1, 7, 100 and 1400 bytes is incomplete until its last byte', async (t) => {
  // 60 protocols of 40 bytes push the hello past 2 KB, like a post-quantum key share does.
  const alpn = Array.from({ length: 60 }, (_, i) => `proto-${String(i).padStart(2, '0')}-${'x'.repeat(31)}`);
  const hello = await captureHello(t, nodeClient({ servername: 'big.example.com', ALPNProtocols: alpn }));
  assert.ok(hello.length > 1500, `hello is ${hello.length} bytes`);
  for (const segment of [1, 7, 100, 1400]) {
    assert.deepEqual(feedInSegments(hello, segment), {
      state: 'done',
      serverName: 'big.example.com',
      alpn,
      consumedRecords: hello.length,
    });
  }
});

test('a ClientHello rebuilt into two records is reassembled at every split point', async (t) => {
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com', ALPNProtocols: ['h2'] }));
  const message = handshakeOf(hello);
  for (let split = 1; split < message.length; split++) {
    const twoRecords = Buffer.concat([record(message.subarray(0, split)), record(message.subarray(split))]);
    const result = readClientHello(twoRecords);
    assert.deepEqual(result, { state: 'done', serverName: 'a.example.com', alpn: ['h2'], consumedRecords: twoRecords.length }, `split at ${split}`);
    // Only the first record present: waiting, not done and not invalid.
    assert.deepEqual(readClientHello(twoRecords.subarray(0, 5 + split + 3)), { state: 'incomplete' }, `split at ${split}`);
  }
  const manyRecords = Buffer.concat(Array.from({ length: Math.ceil(message.length / 10) }, (_, i) => record(message.subarray(i * 10, i * 10 + 10))));
  assert.equal((readClientHello(manyRecords) as { serverName?: unknown }).serverName, 'a.example.com');
});

test('bytes after the records holding the ClientHello are ignored', async (t) => {
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com' }));
  const result = readClientHello(Buffer.concat([hello, record(Buffer.from([1]), 20), Buffer.from('junk')]));
  assert.deepEqual(result, { state: 'done', serverName: 'a.example.com', alpn: [], consumedRecords: hello.length });
});

test('an upper-case server name is lowercased and a name with a byte outside [a-z0-9.-] is invalid', async (t) => {
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com' }));
  assert.equal((readClientHello(replaceAscii(hello, 'a.example.com', 'A.ExAmPlE.CoM')) as { serverName?: unknown }).serverName, 'a.example.com');
  for (const bad of ['a_example.com', 'a.example.co\0', 'a.example.co.', '.a.example.co', 'a..xample.com', 'a.example.c\xe9m']) {
    assert.deepEqual(readClientHello(replaceAscii(hello, 'a.example.com', bad)), { state: 'invalid', reason: 'bad server name' }, bad);
  }
});

test('plain HTTP and other protocols are rejected as not TLS from their first byte', () => {
  for (const text of ['GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n', 'G', 'SSH-2.0-OpenSSH_9.6\r\n', 'PROXY TCP4 ']) {
    assert.deepEqual(readClientHello(Buffer.from(text)), { state: 'invalid', reason: 'not TLS' }, JSON.stringify(text));
  }
  assert.deepEqual(readClientHello(Buffer.from([0x16, 0x03, 0x07])), { state: 'invalid', reason: 'not TLS' });
  assert.deepEqual(readClientHello(Buffer.alloc(0)), { state: 'incomplete' });
  assert.deepEqual(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00])), { state: 'incomplete' });
});

test('a handshake message other than ClientHello is rejected at its first byte', () => {
  assert.deepEqual(readClientHello(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x40, 0x02])), { state: 'invalid', reason: 'not a ClientHello' });
});

test('a declared length over the cap is invalid at once, without waiting for the bytes', async (t) => {
  // Handshake header claiming 16 MB inside a record of 512 bytes: 9 bytes are enough to know.
  assert.deepEqual(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0xff, 0xff, 0xff])), { state: 'invalid', reason: 'too large' });
  // Records chaining past the cap fail when the offending record header arrives.
  // Under a 20 000-byte cap, a full first record declaring 19 380 bytes is fine until a second
  // record declares more than the cap leaves.
  const first = record(Buffer.concat([Buffer.from([1, 0, 0x4b, 0xb4]), Buffer.alloc(16380)]));
  assert.deepEqual(readClientHello(first, { maxBytes: 20_000 }), { state: 'incomplete' });
  const next = Buffer.from([0x16, 0x03, 0x01, 0x10, 0x00]);
  assert.deepEqual(readClientHello(Buffer.concat([first, next]), { maxBytes: 20_000 }), { state: 'invalid', reason: 'too large' });
  // A record longer than 2^14 breaks the record layer whatever the cap.
  assert.deepEqual(readClientHello(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), { maxBytes: 1 << 20 }), { state: 'invalid', reason: 'bad record' });
  // A real hello under a small cap.
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com', ALPNProtocols: ['h2'] }));
  assert.deepEqual(readClientHello(hello.subarray(0, 9), { maxBytes: hello.length - 1 }), { state: 'invalid', reason: 'too large' });
  assert.equal(readClientHello(hello, { maxBytes: hello.length }).state, 'done');
});

test('another record type before the ClientHello is whole breaks the record layer', async (t) => {
  const hello = await captureHello(t, nodeClient({ servername: 'a.example.com' }));
  const message = handshakeOf(hello);
  const interleaved = Buffer.concat([record(message.subarray(0, 50)), record(Buffer.from([1]), 20), record(message.subarray(50))]);
  assert.deepEqual(readClientHello(interleaved), { state: 'invalid', reason: 'bad record' });
  assert.deepEqual(readClientHello(Buffer.concat([record(message.subarray(0, 50)), Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])])), { state: 'invalid', reason: 'bad record' });
});

/** A minimal synthetic ClientHello record (for shapes real clients never send) with the given extensions. */
function syntheticHello(extensions: [number, Buffer][] | null, trailing = Buffer.alloc(0)): Buffer {
  const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
  const fixed = Buffer.concat([Buffer.from([3, 3]), Buffer.alloc(32, 7), Buffer.from([0]), u16(2), u16(0x1301), Buffer.from([1, 0])]);
  const exts = extensions === null ? Buffer.alloc(0) : Buffer.concat(extensions.map(([type, data]) => Buffer.concat([u16(type), u16(data.length), data])));
  const body = Buffer.concat([fixed, extensions === null ? Buffer.alloc(0) : u16(exts.length), exts, trailing]);
  return record(Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 0xff]), body]));
}

function sni(...entries: [number, string][]): Buffer {
  const list = Buffer.concat(entries.map(([type, name]) => Buffer.concat([Buffer.from([type, name.length >> 8, name.length & 0xff]), Buffer.from(name, 'latin1')])));
  return Buffer.concat([Buffer.from([list.length >> 8, list.length & 0xff]), list]);
}

function alpnList(...names: string[]): Buffer {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([n.length]), Buffer.from(n, 'latin1')])));
  return Buffer.concat([Buffer.from([list.length >> 8, list.length & 0xff]), list]);
}

test('extension shapes: what is accepted and what is refused', () => {
  const cases: [string, Buffer, HelloResult | string][] = [
    ['no extensions block at all (pre-TLS 1.2)', syntheticHello(null), { state: 'done', serverName: null, alpn: [], consumedRecords: 0 }],
    ['an unknown name type beside host_name', syntheticHello([[0, sni([1, 'x'], [0, 'a.test'])]]), { state: 'done', serverName: 'a.test', alpn: [], consumedRecords: 0 }],
    ['unknown extensions are skipped', syntheticHello([[0xfe0d, Buffer.alloc(300)], [0, sni([0, 'a.test'])], [16, alpnList('h2')]]), { state: 'done', serverName: 'a.test', alpn: ['h2'], consumedRecords: 0 }],
    ['a 255-byte name', syntheticHello([[0, sni([0, `${'a'.repeat(63)}.`.repeat(4).slice(0, 255)])]]), 'done'],
    ['a 256-byte name', syntheticHello([[0, sni([0, `${'a'.repeat(63)}.`.repeat(3) + 'a'.repeat(64)])]]), 'bad server name'],
    ['server_name twice', syntheticHello([[0, sni([0, 'a.test'])], [0, sni([0, 'b.test'])]]), 'bad extension'],
    ['two host_names in one list', syntheticHello([[0, sni([0, 'a.test'], [0, 'b.test'])]]), 'bad extension'],
    ['an empty host_name', syntheticHello([[0, sni([0, ''])]]), 'bad extension'],
    ['an empty server_name extension', syntheticHello([[0, Buffer.alloc(0)]]), 'bad extension'],
    ['a name list longer than its extension', syntheticHello([[0, Buffer.from([0, 9, 0, 0, 1, 0x61])]]), 'bad extension'],
    ['ALPN twice', syntheticHello([[16, alpnList('h2')], [16, alpnList('h2')]]), 'bad extension'],
    ['an empty ALPN protocol', syntheticHello([[16, alpnList('h2', '')]]), 'bad extension'],
    ['an empty ALPN list', syntheticHello([[16, alpnList()]]), 'bad extension'],
    ['bytes after the extensions block', syntheticHello([[0, sni([0, 'a.test'])]], Buffer.from([0])), 'bad extension'],
  ];
  for (const [what, bytes, expected] of cases) {
    const result = readClientHello(bytes);
    if (typeof expected === 'string') {
      assert.equal(result.state === 'invalid' ? result.reason : result.state, expected, what);
    } else {
      assert.deepEqual(result, expected.state === 'done' ? { ...expected, consumedRecords: bytes.length } : expected, what);
    }
  }
});

test('random garbage, truncations and corruptions of real hellos never throw', async (t) => {
  const hellos = [
    await captureHello(t, nodeClient({ servername: 'a.example.com', ALPNProtocols: ['h2', 'http/1.1'] })),
    await captureHello(t, nodeClient({})),
  ];
  const random = mulberry32(0x5eed);
  const int = (n: number): number => Math.floor(random() * n);
  const counts = { incomplete: 0, done: 0, invalid: 0 };
  const started = process.hrtime.bigint();
  for (let i = 0; i < 20_000; i++) {
    const base = hellos[i % hellos.length]!;
    let input: Buffer;
    switch (i % 4) {
      case 0: {
        // Random bytes, half of them behind a plausible record header so the parser gets deep.
        input = Buffer.from(Array.from({ length: int(600) }, () => int(256)));
        if (i % 8 === 0 && input.length >= 6) input.set([0x16, 0x03, 1 + int(3), int(3), int(256), 1], 0);
        break;
      }
      case 1: {
        // A truncated real hello must be waited for, never judged.
        input = base.subarray(0, int(base.length));
        assert.deepEqual(readClientHello(input), { state: 'incomplete' });
        break;
      }
      case 2: {
        // Flip 1 to 4 bytes, often a length field's neighbourhood.
        input = Buffer.from(base);
        for (let k = 0; k <= int(4); k++) input[int(input.length)] = int(256);
        break;
      }
      default: {
        // Overwrite a 16-bit word with an extreme value, then maybe truncate.
        input = Buffer.from(base);
        input.writeUInt16BE([0, 1, 0xff, 0xffff, int(0x10000)][int(5)]!, int(input.length - 1));
        if (random() < 0.3) input = input.subarray(0, int(input.length));
        break;
      }
    }
    const result = readClientHello(input);
    counts[result.state]++;
    if (result.state === 'done') {
      assert.ok(result.serverName === null || /^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(result.serverName), result.serverName ?? '');
      assert.ok(result.consumedRecords <= input.length);
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.diagnostic(`20000 cases in ${ms.toFixed(0)} ms: ${JSON.stringify(counts)}`);
  assert.ok(counts.done > 0 && counts.invalid > 0 && counts.incomplete > 0);
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
