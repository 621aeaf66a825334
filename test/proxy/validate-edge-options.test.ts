// Validation of the optional endpoint fields: CIDR lists, limits, TLVs, PROXY-in, and the one case
// where endpoints may share an address:port (TLS passthrough with distinct SNI names).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidrList } from '../../proxy/cidr-list.js';
import type { EndpointConfig } from '../../proxy/edge-config.js';
import { validateEdgeConfig } from '../../proxy/validate-edge-config.js';

function ep(id: string, overrides: Partial<EndpointConfig> = {}): EndpointConfig {
  return { id, app: 'x', bind: [{ address: '127.0.0.1', port: 443 }], proxyProtocol: 'v2', backends: [], ...overrides };
}
const pass = (id: string, overrides: Partial<EndpointConfig> = {}) => ep(id, { tls: 'passthrough', ...overrides });

test('snapshots using every optional field are valid', () => {
  const config = {
    version: 1,
    endpoints: [
      pass('a', { sni: ['a.example.com', '*.a.example.com'], proxyProtocolTlvs: ['authority', 'unique-id', 'crc32c'], acceptProxyProtocol: { trustedCidrs: ['10.0.0.0/8', 'fd00::/8'] } }),
      pass('b', { sni: ['b.example.com'], sniDefault: true, acceptProxyProtocol: { trustedCidrs: ['10.0.0.0/8', 'fd00::/8'] } }),
      ep('c', {
        bind: [{ address: '::1', port: 9000 }],
        allow: ['192.0.2.0/24', '2001:db8::/32', '::ffff:198.51.100.7'],
        deny: ['192.0.2.66'],
        maxConnections: 1000,
        maxConnectionsPerClient: 10,
        idleTimeoutMs: 60_000,
      }),
    ],
  };
  assert.equal(validateEdgeConfig(config), undefined);
});

test('bad optional fields and bad sharing are rejected with a reason', () => {
  const cases: [string, EndpointConfig[], RegExp][] = [
    ['two plain endpoints on one port', [ep('a'), ep('b')], /bound by both endpoint "a" and endpoint "b"; only tls passthrough/],
    ['passthrough and plain on one port', [pass('a', { sni: ['a.example.com'] }), ep('b')], /only tls passthrough/],
    ['same name twice', [pass('a', { sni: ['x.example.com'] }), pass('b', { sni: ['X.example.com'] })], /"x.example.com" is claimed by both endpoint "a" and endpoint "b"/],
    ['two defaults', [pass('a', { sniDefault: true }), pass('b', { sniDefault: true })], /only one endpoint may be sniDefault/],
    ['shared without names', [pass('a', { sni: ['a.example.com'] }), pass('b')], /endpoint "b" needs sni names or sniDefault/],
    ['bad name', [pass('a', { sni: ['bad name'] })], /endpoint "a": invalid name pattern "bad name"/],
    ['disagreeing PROXY-in', [pass('a', { sni: ['a.example.com'], acceptProxyProtocol: { trustedCidrs: ['10.0.0.1'] } }), pass('b', { sni: ['b.example.com'] })], /disagree on acceptProxyProtocol/],
    ['sni without passthrough', [ep('a', { sni: ['a.example.com'] })], /need tls: passthrough/],
    ['bad CIDR', [ep('a', { allow: ['10.0.0.0/33'] })], /allow: "10.0.0.0\/33" is not a CIDR/],
    ['short IPv4', [ep('a', { deny: ['10.1'] })], /deny: "10.1" is not a CIDR/],
    ['empty trusted list', [ep('a', { acceptProxyProtocol: { trustedCidrs: [] } })], /non-empty trustedCidrs/],
    ['zero limit', [ep('a', { maxConnections: 0 })], /maxConnections must be a positive integer/],
    ['fractional timeout', [ep('a', { idleTimeoutMs: 1.5 })], /idleTimeoutMs must be a positive integer/],
    ['unknown TLV', [ep('a', { proxyProtocolTlvs: ['alpn' as never] })], /proxyProtocolTlvs must be a list/],
    ['TLVs with v1', [ep('a', { proxyProtocol: 'v1', proxyProtocolTlvs: ['crc32c'] })], /needs proxyProtocol v2/],
  ];
  for (const [name, endpoints, reason] of cases) {
    const problem = validateEdgeConfig({ version: 1, endpoints });
    assert.ok(problem !== undefined, `${name}: accepted`);
    assert.match(problem, reason, name);
  }
});

test('CIDR lists match IPv4, IPv6 and IPv4-mapped addresses both ways', () => {
  const list = CidrList.parse(['10.0.0.0/8', '2001:db8::/32', '::ffff:192.0.2.0/120', '198.51.100.7']);
  const cases: [string, boolean][] = [
    ['10.1.2.3', true],
    ['11.0.0.1', false],
    ['::ffff:10.9.9.9', true],
    ['2001:db8::1', true],
    ['2001:db9::1', false],
    ['192.0.2.200', true],
    ['198.51.100.7', true],
    ['198.51.100.8', false],
    ['not an address', false],
  ];
  for (const [address, expected] of cases) assert.equal(list.has(address), expected, address);
  assert.equal(CidrList.empty.has('10.0.0.1'), false);
});
