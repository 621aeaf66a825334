// The strict PROXY reader against headers built by proxy-protocol-js (an independent implementation),
// HAProxy's documented bytes and hand-built edge cases; CRC32C against published vectors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import ipaddr from 'ipaddr.js';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  UnspecProxyAddress,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { crc32c } from '../../proxy/crc32c.js';
import { PROXY_HEADER_TIMEOUT_MS, readProxyHeader, type ReadResult } from '../../proxy/proxy-header-reader.js';
import { tlv, v2Header, withCrc32c, withTlvs } from './proxy-header-fixtures.js';

const SIGNATURE = '0d0a0d0a000d0a515549540a';
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function doneOf(result: ReadResult): Extract<ReadResult, { state: 'done' }> {
  assert.equal(result.state, 'done', JSON.stringify(result));
  return result as Extract<ReadResult, { state: 'done' }>;
}

function assertEveryPrefixIncomplete(header: Buffer): void {
  for (let i = 0; i < header.length; i++) {
    assert.deepEqual(readProxyHeader(header.subarray(0, i)), { state: 'incomplete' }, `prefix of ${i} bytes`);
  }
}

test('crc32c matches the published Castagnoli check values', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  // RFC 3720 App. B.4
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  const data = Buffer.from('the quick brown fox');
  assert.equal(crc32c(data.subarray(7), crc32c(data.subarray(0, 7))), crc32c(data));
});

test('a v2 IPv4 header from proxy-protocol-js is decoded and the payload after it is left alone', () => {
  const header = v2Header('192.0.2.1', 54321, '10.0.0.1', 443);
  const input = Buffer.concat([header, Buffer.from('GET / HTTP/1.1\r\n')]);
  const { header: decoded, consumed } = doneOf(readProxyHeader(input));
  assert.equal(consumed, 28);
  assert.deepEqual(decoded, {
    version: 2,
    command: 'proxy',
    family: 'tcp4',
    source: { address: '192.0.2.1', port: 54321 },
    destination: { address: '10.0.0.1', port: 443 },
    tlvs: [],
  });
  assert.equal(input.subarray(consumed).toString(), 'GET / HTTP/1.1\r\n');
});

test('a v2 IPv6 header gives compressed lowercase addresses and mapped addresses come out as IPv4', () => {
  const cases: [string, string, string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', 'FD00:0:0:0:1:0:0:2', '2001:db8::1', 'fd00::1:0:0:2'],
    ['::1', '::', '::1', '::'],
    ['::ffff:203.0.113.7', '1:0:2:0:3:0:4:0', '203.0.113.7', '1:0:2:0:3:0:4:0'],
  ];
  for (const [src, dst, expectedSrc, expectedDst] of cases) {
    const { header, consumed } = doneOf(readProxyHeader(v2Header(src, 1, dst, 65535)));
    assert.equal(consumed, 52);
    assert.equal(header.family, 'tcp6');
    assert.deepEqual(header.source, { address: expectedSrc, port: 1 });
    assert.deepEqual(header.destination, { address: expectedDst, port: 65535 });
  }
});

test('decoded addresses and ports agree with the reference parser', () => {
  const pairs: [string, string][] = [
    ['127.0.0.1', '127.0.0.2'],
    ['255.255.255.255', '0.0.0.0'],
    ['2001:db8:85a3::8a2e:370:7334', 'fe80::1'],
  ];
  for (const [src, dst] of pairs) {
    const bytes = v2Header(src, 40000, dst, 8443);
    const reference = V2ProxyProtocol.parse(bytes);
    const { header } = doneOf(readProxyHeader(bytes));
    const address = reference.proxyAddress as IPv4ProxyAddress | IPv6ProxyAddress;
    const text = (a: IPv4Address | IPv6Address): string => ipaddr.fromByteArray(Array.from(a.address)).toString();
    assert.equal(header.source?.address, text(address.sourceAddress));
    assert.equal(header.destination?.address, text(address.destinationAddress));
    assert.equal(header.source?.port, address.sourcePort);
    assert.equal(header.destination?.port, address.destinationPort);
  }
});

test("HAProxy's 16-byte LOCAL health-check header is accepted as local", () => {
  const bytes = hex(`${SIGNATURE} 20 00 0000`);
  assert.deepEqual(readProxyHeader(bytes), {
    state: 'done',
    header: { version: 2, command: 'local', family: 'unspec', tlvs: [] },
    consumed: 16,
  });
  const library = Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress()).build());
  assert.deepEqual(library, bytes);
});

test('bytes captured from HAProxy 2.6.12 with crc32c and unique-id decode, their CRCs verified', () => {
  // `send-proxy-v2 proxy-v2-options crc32c,unique-id check`, unique-id-format %ci:%cp, payload "hi"
  const proxied = hex(`${SIGNATURE} 21 11 0025 7f000001 7f000001 eb72 480b 03 0004 6749d62c 05 000f ${Buffer.from('127.0.0.1:60274').toString('hex')} 6869`);
  const { header, consumed } = doneOf(readProxyHeader(proxied));
  assert.equal(proxied.subarray(consumed).toString(), 'hi');
  assert.deepEqual(header.source, { address: '127.0.0.1', port: 60274 });
  assert.deepEqual(header.destination, { address: '127.0.0.1', port: 18443 });
  assert.equal(header.uniqueId?.toString(), '127.0.0.1:60274');
  // Its health checks: LOCAL carrying a CRC32C TLV, which the spec says to discard with the block.
  const check = hex(`${SIGNATURE} 20 00 0007 03 0004 a9b87e8f`);
  assert.deepEqual(readProxyHeader(check), { state: 'done', header: { version: 2, command: 'local', family: 'unspec', tlvs: [] }, consumed: 23 });
  const zeroed = Buffer.from(check);
  zeroed.writeUInt32BE(0, 19);
  assert.equal(crc32c(zeroed), 0xa9b87e8f, 'our CRC32C agrees with the one HAProxy computed');
});

test('LOCAL skips its whole block by len, whatever is in it', () => {
  const withJunk = Buffer.concat([hex(`${SIGNATURE} 20 11 0003 aabbcc`), Buffer.from('payload')]);
  const { header, consumed } = doneOf(readProxyHeader(withJunk));
  assert.equal(consumed, 19);
  assert.equal(header.command, 'local');
  assert.equal(header.source, undefined);
  assert.equal(withJunk.subarray(consumed).toString(), 'payload');
});

test('TLVs are read inside len: AUTHORITY, UNIQUE_ID and unknown types are kept, NOOP is dropped', () => {
  const id = Buffer.alloc(128, 7);
  const bytes = withTlvs(v2Header('192.0.2.1', 1000, '192.0.2.2', 443), [
    tlv(0x04, Buffer.alloc(5)),
    tlv(0x02, Buffer.from('bücher.example', 'utf8')),
    tlv(0x05, id),
    tlv(0xe0, Buffer.from([1, 2])),
    tlv(0x04, Buffer.alloc(0)),
  ]);
  const input = Buffer.concat([bytes, Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb])]);
  const { header, consumed } = doneOf(readProxyHeader(input));
  assert.equal(consumed, bytes.length);
  assert.equal(header.authority, 'bücher.example');
  assert.deepEqual(header.uniqueId, id);
  assert.deepEqual(
    header.tlvs.map((t) => t.type),
    [0x02, 0x05, 0xe0],
  );
  assert.deepEqual(input.subarray(consumed), Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb]), 'a TLV-shaped payload stays payload');
});

test('a CRC32C TLV is verified over the whole header and a single flipped bit is rejected', () => {
  const good = withCrc32c(withTlvs(v2Header('2001:db8::1', 5, '2001:db8::2', 6), [tlv(0x02, Buffer.from('a.example'))]));
  const { header } = doneOf(readProxyHeader(good));
  assert.equal(header.tlvs.find((t) => t.type === 0x03)?.value.length, 4);
  for (const at of [13, 20, 50, good.length - 1]) {
    const bad = Buffer.from(good);
    bad[at] = bad[at]! ^ 0x01;
    const result = readProxyHeader(bad);
    assert.deepEqual(result, { state: 'invalid', reason: at === 13 ? 'bad family' : 'CRC32C mismatch' }, `bit flipped at ${at}`);
  }
  const short = withTlvs(v2Header('192.0.2.1', 1, '192.0.2.2', 2), [tlv(0x03, Buffer.alloc(3))]);
  assert.deepEqual(readProxyHeader(short), { state: 'invalid', reason: 'bad CRC32C TLV' });
});

test('TLVs that overrun the header, oversize unique ids, bad UTF-8 and duplicates are rejected', () => {
  const base = v2Header('192.0.2.1', 1, '192.0.2.2', 2);
  const cases: [Buffer, string][] = [
    [withTlvs(base, [Buffer.from([0xe0, 0x00, 0x05, 1, 2, 3])]), 'TLV overruns header'],
    [withTlvs(base, [Buffer.from([0xe0, 0x00])]), 'TLV overruns header'],
    [withTlvs(base, [tlv(0x05, Buffer.alloc(129))]), 'unique id too long'],
    [withTlvs(base, [tlv(0x02, Buffer.from([0xc3, 0x28]))]), 'bad authority'],
    [withTlvs(base, [tlv(0x02, Buffer.from('a')), tlv(0x02, Buffer.from('b'))]), 'duplicate TLV'],
  ];
  for (const [bytes, reason] of cases) assert.deepEqual(readProxyHeader(bytes), { state: 'invalid', reason });
});

test('every prefix of a valid header is incomplete and byte-at-a-time feeding reaches the same result', () => {
  const headers = [
    v2Header('192.0.2.1', 1, '192.0.2.2', 2),
    withCrc32c(withTlvs(v2Header('::1', 7, '::2', 8), [tlv(0x02, Buffer.from('x')), tlv(0x05, Buffer.from('id'))])),
    hex(`${SIGNATURE} 20 00 0000`),
    Buffer.from(new V1ProxyProtocol(INETProtocol.TCP6, new Peer('2001:db8::1', 1), new Peer('::1', 2)).build()),
    Buffer.from('PROXY UNKNOWN\r\n'),
  ];
  for (const header of headers) {
    assertEveryPrefixIncomplete(header);
    const input = Buffer.concat([header, Buffer.from('after')]);
    let fed = Buffer.alloc(0);
    let result: ReadResult = { state: 'incomplete' };
    for (let i = 0; i < input.length && result.state === 'incomplete'; i++) {
      fed = Buffer.concat([fed, input.subarray(i, i + 1)]);
      result = readProxyHeader(fed);
    }
    assert.deepEqual(result, readProxyHeader(input));
    assert.equal(doneOf(result).consumed, header.length);
  }
});

test('bad version, command and family bytes are rejected as soon as they arrive', () => {
  const cases: [string, string][] = [
    [`${SIGNATURE} 11`, 'unsupported version'],
    [`${SIGNATURE} 31`, 'unsupported version'],
    [`${SIGNATURE} 22`, 'bad command'],
    [`${SIGNATURE} 2f`, 'bad command'],
    [`${SIGNATURE} 21 41`, 'bad family'],
    [`${SIGNATURE} 21 13`, 'bad family'],
    [`${SIGNATURE} 21 10`, 'bad family'],
    [`${SIGNATURE} 20 01`, 'bad family'],
    [`${SIGNATURE} 21 12`, 'unsupported family'],
    [`${SIGNATURE} 21 11 0008`, 'truncated address block'],
    [`${SIGNATURE} 21 21 0020`, 'truncated address block'],
  ];
  for (const [bytes, reason] of cases) assert.deepEqual(readProxyHeader(hex(bytes)), { state: 'invalid', reason }, bytes);
  assert.equal(readProxyHeader(hex(`${SIGNATURE} 20 12 000c ${'00'.repeat(12)}`)).state, 'done', 'LOCAL ignores the family');
});

test('a len over the cap is rejected from the 16 fixed bytes, without waiting for the rest', () => {
  assert.deepEqual(readProxyHeader(hex(`${SIGNATURE} 21 11 0ff1`)), { state: 'invalid', reason: 'length exceeds cap' });
  assert.deepEqual(readProxyHeader(hex(`${SIGNATURE} 21 11 0ff0`)), { state: 'incomplete' }, '4096 bytes in all is allowed');
  assert.deepEqual(readProxyHeader(hex(`${SIGNATURE} 21 11 0100`), { maxBytes: 256 }), { state: 'invalid', reason: 'length exceeds cap' });
  assert.throws(() => readProxyHeader(Buffer.alloc(0), { maxBytes: 15 }), RangeError);
  // The largest header the format allows, 21845 empty TLVs, is read when the cap permits it.
  const huge = withTlvs(v2Header('192.0.2.1', 1, '192.0.2.2', 2), Array.from({ length: 21841 }, () => tlv(0xe1, Buffer.alloc(0))));
  assert.equal(huge.length, 65551);
  assert.equal(doneOf(readProxyHeader(huge, { maxBytes: 65551 })).header.tlvs.length, 21841);
});

test('PROXY with family UNSPEC carries no addresses and a unix header gives its paths', () => {
  const unspec = doneOf(readProxyHeader(hex(`${SIGNATURE} 21 00 0000`))).header;
  assert.deepEqual(unspec, { version: 2, command: 'proxy', family: 'unspec', tlvs: [] });
  const block = Buffer.alloc(216);
  block.write('/run/client.sock', 0);
  block.write('/run/server.sock', 108);
  const unix = doneOf(readProxyHeader(Buffer.concat([hex(`${SIGNATURE} 21 31 00d8`), block]), { maxBytes: 300 })).header;
  assert.deepEqual([unix.family, unix.source, unix.destination], ['unix', { address: '/run/client.sock', port: 0 }, { address: '/run/server.sock', port: 0 }]);
});

test('anything that is not a PROXY header is rejected at the first byte that disagrees', () => {
  assert.deepEqual(readProxyHeader(Buffer.alloc(0)), { state: 'incomplete' });
  assert.deepEqual(readProxyHeader(Buffer.from('G')), { state: 'invalid', reason: 'not a PROXY header' });
  assert.deepEqual(readProxyHeader(Buffer.from('PROXX')), { state: 'invalid', reason: 'not a PROXY header' });
  assert.deepEqual(readProxyHeader(Buffer.from('PROXY')), { state: 'incomplete' });
  assert.deepEqual(readProxyHeader(hex('0d0a0d0a00')), { state: 'incomplete' });
  assert.deepEqual(readProxyHeader(hex('0d0a0d0a01')), { state: 'invalid', reason: 'not a PROXY header' });
  assert.deepEqual(readProxyHeader(Buffer.from('\r\n\r\nGET')), { state: 'invalid', reason: 'not a PROXY header' });
});

test('v1 lines from proxy-protocol-js are decoded, UNKNOWN as local', () => {
  const tcp4 = new V1ProxyProtocol(INETProtocol.TCP4, new Peer('192.0.2.1', 41766), new Peer('127.0.0.1', 7302)).build();
  const result = doneOf(readProxyHeader(Buffer.from(`${tcp4}SSH-2.0`)));
  assert.equal(result.consumed, tcp4.length);
  assert.deepEqual(result.header, {
    version: 1,
    command: 'proxy',
    family: 'tcp4',
    source: { address: '192.0.2.1', port: 41766 },
    destination: { address: '127.0.0.1', port: 7302 },
    tlvs: [],
  });
  const tcp6 = doneOf(readProxyHeader(Buffer.from('PROXY TCP6 ::FFFF:192.0.2.1 2001:DB8:0::1 0 65535\r\n'))).header;
  assert.deepEqual([tcp6.family, tcp6.source, tcp6.destination], ['tcp6', { address: '192.0.2.1', port: 0 }, { address: '2001:db8::1', port: 65535 }]);
  const unknown = new V1ProxyProtocol(INETProtocol.UNKNOWN, new Peer('192.0.2.1', 1), new Peer('192.0.2.2', 2)).build();
  for (const line of [unknown, 'PROXY UNKNOWN\r\n']) {
    assert.deepEqual(doneOf(readProxyHeader(Buffer.from(line))).header, { version: 1, command: 'local', family: 'unspec', tlvs: [] });
  }
});

test('a v1 line is at most 107 bytes with its CRLF', () => {
  const full = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
  assert.equal(full.length, 107);
  assert.equal(doneOf(readProxyHeader(Buffer.from(full))).consumed, 107);
  const endless = Buffer.from(`PROXY UNKNOWN ${'a'.repeat(200)}`);
  assert.deepEqual(readProxyHeader(endless.subarray(0, 106)), { state: 'incomplete' });
  assert.deepEqual(readProxyHeader(endless.subarray(0, 107)), { state: 'invalid', reason: 'v1 line too long' });
  assert.deepEqual(readProxyHeader(endless.subarray(0, 108)), { state: 'invalid', reason: 'v1 line too long' });
  const crAtTheEnd = Buffer.from(`${full.slice(0, 105)}x\r\n`);
  assert.deepEqual(readProxyHeader(crAtTheEnd), { state: 'invalid', reason: 'v1 line too long' });
});

test('v1 lines with bad ports, addresses, protocols or line endings are rejected', () => {
  const cases: [string, string][] = [
    ['PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 8a 443\r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 \r\n', 'v1 bad port'],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n', 'v1 bad address'],
    ['PROXY TCP4 01.2.3.4 5.6.7.8 80 443\r\n', 'v1 bad address'],
    ['PROXY TCP4 ::1 5.6.7.8 80 443\r\n', 'v1 bad address'],
    ['PROXY TCP6 1.2.3.4 ::1 80 443\r\n', 'v1 bad address'],
    ['PROXY TCP6 fe80::1%eth0 ::1 80 443\r\n', 'v1 bad address'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n', 'v1 bad address'],
    ['PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n', 'v1 bad protocol'],
    ['PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n', 'v1 bad protocol'],
    ['PROXY UNKNOWNX\r\n', 'v1 bad protocol'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n', 'v1 bad line ending'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 443\rX', 'v1 bad line ending'],
    ['PROXY TCP4\t1.2.3.4 5.6.7.8 80 443\r\n', 'v1 bad character'],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 80 443\u00ff\r\n', 'v1 bad character'],
  ];
  for (const [line, reason] of cases) {
    assert.deepEqual(readProxyHeader(Buffer.from(line, 'latin1')), { state: 'invalid', reason }, JSON.stringify(line));
  }
});

test('the header timeout for the wiring covers a TCP retransmit', () => {
  assert.ok(PROXY_HEADER_TIMEOUT_MS >= 3000);
});
