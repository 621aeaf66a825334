// The TLS part of a route (route-table.ts) for a tls: terminate endpoint: its certificate
// contexts, ALPN list and whether clients must present a certificate.

import { createHash, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import type { CertificateConfig, EdgeConfig, EndpointConfig } from '../edge-config.js';
import { createCertificatePicker, SERVING_SECURE_OPTIONS } from './certificate-picker.js';
import type { RouteTls } from './tls-termination.js';

export function routeTls(endpoint: EndpointConfig, config: EdgeConfig, ticketKeys: Buffer | undefined): RouteTls | null {
  const terminate = endpoint.terminate;
  if (endpoint.tls !== 'terminate' || terminate === undefined) return null;
  const certificates = new Map<string, CertificateConfig>((config.certificates ?? []).map((c) => [c.id, c]));
  // Tickets and sessions of one endpoint are not accepted by another.
  const sessionIdContext = createHash('sha256').update(endpoint.id).digest('hex').slice(0, 32);
  return {
    picker: createCertificatePicker(terminate, certificates, ticketKeys ?? randomBytes(48), sessionIdContext),
    alpn: terminate.alpn === undefined || terminate.alpn.length === 0 ? undefined : [...terminate.alpn],
    requireClientCert: terminate.clientCa !== undefined,
    challenges: challengeContexts(endpoint, config),
  };
}

/** The app's pending tls-alpn-01 challenge certificates by name; null when there are none. */
function challengeContexts(endpoint: EndpointConfig, config: EdgeConfig): Map<string, tls.SecureContext> | null {
  const own = (config.acmeChallenges ?? []).filter((c) => c.app === endpoint.app);
  if (own.length === 0) return null;
  return new Map(own.map((c) => [c.name.toLowerCase(), tls.createSecureContext({ cert: c.cert, key: c.key, minVersion: 'TLSv1.2', ...SERVING_SECURE_OPTIONS })]));
}
