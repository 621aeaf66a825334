// A tls = "terminate" endpoint for tests of the edge's termination: certificates issued by a test
// CA, bound on a free loopback port, in front of a strict PROXY v2 backend that records the TLVs
// (the authority one asked for). The caller applies it to an edge.
import type { TestContext } from 'node:test';
import type { CertificateConfig, EndpointConfig } from '../../proxy/edge-config.js';
import { freePort } from './tcp-client.js';
import { endpoint } from './test-edge.js';
import { makeTestCa, type TestCa } from './tls-certs.js';
import { startTlvBackend, type TlvBackend } from './tlv-backend.js';

export interface TerminatingEndpoint {
  ca: TestCa;
  port: number;
  backend: TlvBackend;
  certs: CertificateConfig[];
  /** Endpoint `web`, serving `certs` in their order (the first is the default). */
  ep: EndpointConfig;
}

/** A certificate to issue: its subject CN is the first name unless given. */
export interface CertificateSpec {
  id: string;
  names: string[];
  cn?: string;
}

export async function startTerminatingEndpoint(
  t: TestContext,
  specs: CertificateSpec[],
  terminate: Omit<NonNullable<EndpointConfig['terminate']>, 'certificates'> = {},
): Promise<TerminatingEndpoint> {
  const ca = makeTestCa(t);
  const backend = await startTlvBackend(t);
  const port = await freePort();
  const certs: CertificateConfig[] = specs.map((c) => ({ id: c.id, names: c.names, ...ca.issue({ cn: c.cn ?? c.names[0] ?? c.id, names: c.names }) }));
  const ep = endpoint({
    id: 'web',
    bind: [{ address: '127.0.0.1', port }],
    backends: [backend],
    proxyProtocol: 'v2',
    options: { tls: 'terminate', proxyProtocolTlvs: ['authority'], terminate: { certificates: specs.map((c) => c.id), ...terminate } },
  });
  return { ca, port, backend, certs, ep };
}
