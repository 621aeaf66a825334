// PROXY v2 TLVs out: AUTHORITY, UNIQUE_ID and CRC32C are laid out per the spec, `len` covers them,
// and the strict reader (which verifies the checksum) reads back what was written.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildProxyHeader, nextUniqueId } from '../../proxy/proxy-header.js';
import { readProxyHeader } from '../../proxy/proxy-header-reader.js';

const src = { address: '192.0.2.1', port: 5000 };
const dst = { address: '2001:db8::1', port: 443 };

// A mixed IPv4/IPv6 pair is sent as IPv6; the reader gives the mapped side back as IPv4.
test('each combination of TLVs reads back, with len covering them and the CRC verified', () => {
  const id = nextUniqueId();
  for (const authority of [null, 'a.example.com']) {
    for (const uniqueId of [null, id]) {
      for (const crc of [false, true]) {
        const header = buildProxyHeader('v2', src, dst, { authority, uniqueId, crc32c: crc })!;
        assert.equal(header.readUInt16BE(14), header.length - 16);
        const result = readProxyHeader(Buffer.concat([header, Buffer.from('payload')]));
        assert.equal(result.state, 'done');
        if (result.state !== 'done') continue;
        assert.equal(result.consumed, header.length);
        assert.equal(result.header.authority, authority ?? undefined);
        assert.deepEqual(result.header.uniqueId, uniqueId ?? undefined);
        assert.equal(result.header.tlvs.some((t) => t.type === 0x03), crc);
        assert.deepEqual(result.header.source, { address: '192.0.2.1', port: 5000 });
      }
    }
  }
});

test('a flipped bit in a checksummed header is rejected by the reader', () => {
  const header = buildProxyHeader('v2', src, { address: '192.0.2.2', port: 80 }, { authority: 'x.example.com', crc32c: true })!;
  header[20]! ^= 1;
  assert.deepEqual(readProxyHeader(header), { state: 'invalid', reason: 'CRC32C mismatch' });
});

test('unique ids are 16 bytes and never repeat within a process', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(nextUniqueId().toString('hex'));
  assert.equal(seen.size, 1000);
});

test('v1 ignores TLVs', () => {
  const header = buildProxyHeader('v1', src, { address: '192.0.2.2', port: 80 }, { authority: 'a.example.com', uniqueId: nextUniqueId(), crc32c: true })!;
  assert.equal(header.toString(), 'PROXY TCP4 192.0.2.1 192.0.2.2 5000 80\r\n');
});
