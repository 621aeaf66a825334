// The TLS contexts of one tls: terminate endpoint and the choice among them by SNI: an exact name
// first, then a `*.` wildcard covering one label, then the endpoint's first certificate (also for
// a hello without a name). Contexts are built once per snapshot; a connection keeps the context
// it shook hands with, so a new certificate only affects new handshakes.

import { constants } from 'node:crypto';
import tls from 'node:tls';
import type { CertificateConfig, TerminateConfig } from '../edge-config.js';

/** TLS 1.3 suites, then TLS 1.2 AEAD suites with forward secrecy only. */
export const MODERN_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * OpenSSL options of every context the edge serves with: client-initiated renegotiation (TLS 1.2)
 * is refused (a no_renegotiation alert, no handshake work), on every path alike, as HAProxy does.
 * Node 20 and 24 define the flag; were it missing, renegotiation would stay at node's default.
 */
export const SERVING_SECURE_OPTIONS: { secureOptions?: number } =
  typeof constants.SSL_OP_NO_RENEGOTIATION === 'number' ? { secureOptions: constants.SSL_OP_NO_RENEGOTIATION } : {};

export interface CertificatePicker {
  /** Undefined while the endpoint has no certificate yet (an ACME one being obtained). */
  readonly defaultContext: tls.SecureContext | undefined;
  /** The context for a hello's server name (null: none sent); undefined when there is none. */
  pick(serverName: string | null): tls.SecureContext | undefined;
  /** Every context, for ticket key rotation. */
  readonly contexts: readonly tls.SecureContext[];
}

export function createCertificatePicker(terminate: TerminateConfig, certificates: ReadonlyMap<string, CertificateConfig>, ticketKeys: Buffer, sessionIdContext: string): CertificatePicker {
  const exact = new Map<string, tls.SecureContext>();
  const wildcard = new Map<string, tls.SecureContext>();
  const contexts: tls.SecureContext[] = [];
  for (const id of terminate.certificates) {
    const cert = certificates.get(id);
    if (cert === undefined) continue; // the snapshot check refuses this
    const context = tls.createSecureContext({
      cert: cert.cert,
      key: cert.key,
      minVersion: 'TLSv1.2',
      ciphers: MODERN_CIPHERS,
      honorCipherOrder: true,
      ...SERVING_SECURE_OPTIONS,
      ticketKeys,
      // Resumption must not cross endpoints; with a client CA, OpenSSL also requires it.
      sessionIdContext,
      ...(terminate.clientCa === undefined ? {} : { ca: terminate.clientCa }),
    });
    contexts.push(context);
    for (const raw of cert.names) {
      const name = raw.toLowerCase();
      if (name.startsWith('*.')) {
        if (!wildcard.has(name.slice(2))) wildcard.set(name.slice(2), context);
      } else if (!exact.has(name)) exact.set(name, context);
    }
  }
  const defaultContext = contexts[0];
  return {
    defaultContext,
    contexts,
    pick(serverName) {
      if (serverName === null || serverName === '') return defaultContext;
      const name = serverName.toLowerCase();
      const hit = exact.get(name);
      if (hit !== undefined) return hit;
      const dot = name.indexOf('.');
      return (dot > 0 ? wildcard.get(name.slice(dot + 1)) : undefined) ?? defaultContext;
    },
  };
}

/** Sets the same ticket key on every context (the native context's setter; tls.Server uses it too). */
export function setTicketKeys(contexts: readonly tls.SecureContext[], keys: Buffer): void {
  for (const c of contexts) (c as unknown as { context: { setTicketKeys(k: Buffer): void } }).context.setTicketKeys(keys);
}
