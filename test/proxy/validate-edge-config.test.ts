import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EdgeConfig, EndpointConfig } from '../../proxy/edge-config.js';
import { parseEdgeConfig, validateEdgeConfig } from '../../proxy/validate-edge-config.js';

function endpoint(overrides: Partial<EndpointConfig> = {}): EndpointConfig {
  return {
    id: 'echo/9000',
    app: 'echo',
    bind: [{ address: '127.0.0.1', port: 9000 }],
    proxyProtocol: 'v2',
    backends: [{ id: 'i-1', address: '127.0.0.1', port: 32768 }],
    ...overrides,
  };
}

test('a well-formed snapshot is valid', () => {
  const config: EdgeConfig = {
    version: 3,
    endpoints: [
      endpoint(),
      endpoint({ id: 'echo/v6', bind: [{ address: '::1', port: 9000 }, { address: '127.0.0.2', port: 9000 }] }),
    ],
  };
  assert.equal(validateEdgeConfig(config), undefined);
});

test('invalid snapshots are rejected with a reason naming the problem', () => {
  const cases: [string, unknown, RegExp][] = [
    ['not an object', null, /must be an object/],
    ['negative version', { version: -1, endpoints: [] }, /version/],
    ['port 0', { version: 1, endpoints: [endpoint({ bind: [{ address: '127.0.0.1', port: 0 }] })] }, /port 0/],
    ['port too large', { version: 1, endpoints: [endpoint({ backends: [{ id: 'b', address: '127.0.0.1', port: 70000 }] })] }, /backend "b".*70000/],
    ['hostname bind', { version: 1, endpoints: [endpoint({ bind: [{ address: 'localhost', port: 9000 }] })] }, /not an IPv4 or IPv6 literal/],
    ['bracketed IPv6', { version: 1, endpoints: [endpoint({ bind: [{ address: '[::1]', port: 9000 }] })] }, /not an IPv4 or IPv6 literal/],
    ['mapped bind', { version: 1, endpoints: [endpoint({ bind: [{ address: '::ffff:127.0.0.1', port: 9000 }] })] }, /IPv4-mapped/],
    ['duplicate endpoint id', { version: 1, endpoints: [endpoint(), endpoint({ bind: [] })] }, /"echo\/9000" appears twice/],
    [
      'same address:port in two endpoints, spelled differently',
      { version: 1, endpoints: [endpoint({ bind: [{ address: '::1', port: 9000 }] }), endpoint({ id: 'b', bind: [{ address: '0:0::1', port: 9000 }] })] },
      /\[::1\]:9000 is bound by both endpoint "echo\/9000" and endpoint "b"/,
    ],
    ['duplicate backend id', { version: 1, endpoints: [endpoint({ backends: [{ id: 'x', address: '127.0.0.1', port: 1 }, { id: 'x', address: '127.0.0.1', port: 2 }] })] }, /backend id "x" appears twice/],
    ['bad proxy mode', { version: 1, endpoints: [endpoint({ proxyProtocol: 'v3' as never })] }, /proxyProtocol/],
    ['endpoint not an object', { version: 1, endpoints: [7] }, /^endpoint #0 must be an object$/],
    ['endpoint without an id', { version: 1, endpoints: [{ ...endpoint(), id: '' }] }, /^endpoint #0 needs a non-empty id$/],
    ['bind entry not an object', { version: 1, endpoints: [endpoint({ bind: ['127.0.0.1:9000' as never] })] }, /^endpoint "echo\/9000": bind address must be an object with address and port$/],
    ['backend without an id', { version: 1, endpoints: [endpoint({ backends: [{ address: '127.0.0.1', port: 1 } as never] })] }, /^endpoint "echo\/9000": every backend needs a non-empty id$/],
    ['the same address:port twice in one endpoint', { version: 1, endpoints: [endpoint({ bind: [{ address: '::1', port: 1 }, { address: '0::1', port: 1 }] })] }, /^endpoint "echo\/9000": binds \[::1\]:1 twice$/],
    ['version not a number', { version: '3', endpoints: [] }, /^version must be a non-negative integer$/],
  ];
  for (const [name, config, reason] of cases) {
    const problem = validateEdgeConfig(config);
    assert.ok(problem !== undefined, `${name}: accepted`);
    assert.match(problem, reason, name);
  }
});

test('a valid snapshot parses to its typed form, without fields the edge does not know', () => {
  const check = parseEdgeConfig({ version: 1, endpoints: [{ ...endpoint(), comment: 'not an edge field' }], extra: true });
  assert.equal(check.ok, true);
  if (!check.ok) return;
  assert.deepEqual(check.config, { version: 1, endpoints: [endpoint()] });
});
