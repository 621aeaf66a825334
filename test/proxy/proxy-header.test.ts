// PROXY headers are checked byte for byte against proxy-protocol-js, an independent implementation.

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
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { buildProxyHeader } from '../../proxy/proxy-header.js';
import { normalizeIp } from '../../proxy/peer-address.js';

function v4(a: string): IPv4Address {
  return IPv4Address.createFrom(ipaddr.IPv4.parse(a).toByteArray() as [number, number, number, number]);
}

function v6(a: string): IPv6Address {
  return IPv6Address.createFrom(ipaddr.IPv6.parse(a).toByteArray() as Parameters<typeof IPv6Address.createFrom>[0]);
}

test('a v2 header for an IPv4 pair matches the reference implementation byte for byte', () => {
  const header = buildProxyHeader('v2', { address: '192.0.2.1', port: 54321 }, { address: '10.0.0.1', port: 443 });
  const expected = new V2ProxyProtocol(
    Command.PROXY,
    TransportProtocol.STREAM,
    new IPv4ProxyAddress(v4('192.0.2.1'), 54321, v4('10.0.0.1'), 443),
  ).build();
  assert.ok(header);
  assert.equal(header.length, 28);
  assert.deepEqual(header, Buffer.from(expected));
});

test('a v2 header for an IPv6 pair matches the reference implementation byte for byte', () => {
  const header = buildProxyHeader('v2', { address: '2001:db8::1', port: 1 }, { address: 'fd00::ff:2', port: 65535 });
  const expected = new V2ProxyProtocol(
    Command.PROXY,
    TransportProtocol.STREAM,
    new IPv6ProxyAddress(v6('2001:db8::1'), 1, v6('fd00::ff:2'), 65535),
  ).build();
  assert.ok(header);
  assert.equal(header.length, 52);
  assert.deepEqual(header, Buffer.from(expected));
});

test('a mixed IPv4/IPv6 pair is sent as IPv6 with the IPv4 side mapped', () => {
  const header = buildProxyHeader('v2', { address: '203.0.113.7', port: 4000 }, { address: '::1', port: 9000 });
  assert.ok(header);
  const parsed = V2ProxyProtocol.parse(header);
  const address = parsed.proxyAddress as IPv6ProxyAddress;
  assert.equal(ipaddr.fromByteArray([...address.sourceAddress.address]).toString(), '::ffff:cb00:7107');
  assert.equal(address.destinationPort, 9000);
  assert.equal(buildProxyHeader('v1', { address: '203.0.113.7', port: 4000 }, { address: '::1', port: 9000 })?.toString(), 'PROXY TCP6 ::ffff:203.0.113.7 ::1 4000 9000\r\n');
});

test('v1 headers are one line that the reference parser reads back', () => {
  const cases = [
    { src: { address: '127.0.0.1', port: 41766 }, dst: { address: '127.0.0.2', port: 7302 }, line: 'PROXY TCP4 127.0.0.1 127.0.0.2 41766 7302\r\n' },
    { src: { address: '2001:db8::5', port: 5 }, dst: { address: '::1', port: 443 }, line: 'PROXY TCP6 2001:db8::5 ::1 5 443\r\n' },
  ];
  for (const { src, dst, line } of cases) {
    const header = buildProxyHeader('v1', src, dst);
    assert.equal(header?.toString('latin1'), line);
    const parsed = V1ProxyProtocol.parse(line);
    assert.equal(parsed.inetProtocol, line.includes('TCP4') ? INETProtocol.TCP4 : INETProtocol.TCP6);
    assert.deepEqual(parsed.source, new Peer(src.address, src.port));
    assert.deepEqual(parsed.destination, new Peer(dst.address, dst.port));
  }
});

test('mode none sends no header', () => {
  assert.equal(buildProxyHeader('none', { address: '127.0.0.1', port: 1 }, { address: '127.0.0.1', port: 2 }), null);
});

test('IPv4-mapped IPv6 addresses are normalised to IPv4 and others are left alone', () => {
  const cases: [string, string][] = [
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
    ['0:0:0:0:0:ffff:192.0.2.1', '192.0.2.1'],
    ['::1', '::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['127.0.0.1', '127.0.0.1'],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeIp(input), expected, input);
});
