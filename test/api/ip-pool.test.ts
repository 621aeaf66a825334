// Pools: parsing (canonical CIDR, usable range per family and size), the n-th address, and the
// configuration's refusals (host bits, overlaps, a pool holding a shared address).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressAt, canonicalAddress, contains, indexOf, parseIpPool, parseIpPools } from '../../api/ip-pool.js';

test('a pool holds its usable addresses: IPv4 without network and broadcast, IPv6 without the prefix itself', () => {
  const cases: [string, string, string, bigint, string][] = [
    ['127.77.0.0/24', '127.77.0.0/24', 'ipv4', 254n, '127.77.0.1'],
    ['203.0.113.8/30', '203.0.113.8/30', 'ipv4', 2n, '203.0.113.9'],
    ['203.0.113.8/31', '203.0.113.8/31', 'ipv4', 2n, '203.0.113.8'],
    ['203.0.113.9/32', '203.0.113.9/32', 'ipv4', 1n, '203.0.113.9'],
    ['fd00:1:0:0::/64', 'fd00:1::/64', 'ipv6', 2n ** 64n - 1n, 'fd00:1::1'],
    ['fd00::7/128', 'fd00::7/128', 'ipv6', 1n, 'fd00::7'],
  ];
  for (const [text, cidr, family, size, first] of cases) {
    const pool = parseIpPool(text);
    assert.deepEqual([pool.cidr, pool.family, pool.size, addressAt(pool, 0n)], [cidr, family, size, first], text);
    assert.equal(indexOf(pool, first), 0n);
  }
  const v4 = parseIpPool('127.77.0.0/24');
  assert.equal(addressAt(v4, 253n), '127.77.0.254');
  assert.throws(() => addressAt(v4, 254n), RangeError);
  assert.equal(indexOf(v4, '127.77.0.255'), null);
  assert.equal(contains(v4, '127.77.0.255'), true);
  assert.equal(contains(v4, '127.78.0.1'), false);
  assert.equal(addressAt(parseIpPool('fd00:1::/64'), 2n ** 63n), 'fd00:1::8000:0:0:1');
});

test('addresses are compared in canonical form', () => {
  assert.deepEqual(canonicalAddress('FD00:0:0::0001'), { address: 'fd00::1', family: 'ipv6' });
  assert.deepEqual(canonicalAddress('::ffff:127.0.0.5'), { address: '127.0.0.5', family: 'ipv4' });
  assert.equal(canonicalAddress('127.0.0'), null);
  assert.equal(canonicalAddress('web'), null);
});

test('bad pools are refused with E_CONFIG_INVALID saying what is wrong', () => {
  const cases: [string[], string[], RegExp][] = [
    [['127.77.0.1/24'], [], /host bits set: the network is 127\.77\.0\.0\/24/],
    [['10.0.0.0'], [], /not an address range in CIDR form/],
    [['10.0.0.0/8', '10.1.0.0/16'], [], /overlap/],
    [['fd00::/16', 'fd00:1::/64'], [], /overlap/],
    [['127.0.0.0/24'], ['127.0.0.1', '::1'], /holds the shared address 127\.0\.0\.1/],
    [['::ffff:10.0.0.0/120'], [], /IPv4-mapped/],
  ];
  for (const [texts, shared, message] of cases) {
    assert.throws(() => parseIpPools(texts, shared), (err: Error & { code?: string }) => err.code === 'E_CONFIG_INVALID' && message.test(err.message), texts.join(' '));
  }
  assert.equal(parseIpPools(['10.0.0.0/24', 'fd00:1::/64', '10.0.1.0/24'], ['127.0.0.1']).length, 3);
});
