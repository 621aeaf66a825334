// An edge for tests (silent logger, closed when the test ends) and a terse builder for endpoints
// whose backends are test servers.

import type { TestContext } from 'node:test';
import { pino } from 'pino';
import type { BindAddress, EndpointConfig, ProxyProtocolMode } from '../../proxy/edge-config.js';
import { createEdge, type Edge, type EdgeOptions } from '../../proxy/edge.js';

export function createTestEdge(t: TestContext, options: Partial<EdgeOptions> = {}): Edge {
  const edge = createEdge({ log: pino({ level: 'silent' }), ...options });
  t.after(() => edge.close());
  return edge;
}

export interface TestEndpoint {
  id: string;
  bind: BindAddress[];
  /** Servers with an address and port; their index becomes the backend id (`b0`, `b1`...) unless named. */
  backends: { address: string; port: number; id?: string }[];
  proxyProtocol?: ProxyProtocolMode;
  /** Any optional endpoint fields (limits, lists, SNI, PROXY-in...). */
  options?: Partial<EndpointConfig>;
}

export function endpoint(spec: TestEndpoint): EndpointConfig {
  return {
    id: spec.id,
    app: 'test',
    bind: spec.bind,
    proxyProtocol: spec.proxyProtocol ?? 'none',
    backends: spec.backends.map((b, i) => ({ id: b.id ?? `b${i}`, address: b.address, port: b.port })),
    ...spec.options,
  };
}
