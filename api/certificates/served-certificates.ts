// What the edge feed (api/edge-feed.ts) needs of an app's certificates: each one still valid, with
// its key decrypted, newest first (so a renewed certificate wins a name over the one it replaces,
// and is the default), and the endpoint's terminate settings naming them. An ACME certificate is
// served only while an endpoint of its app wants one of its names (acmeNamesWanted): one whose
// names were all dropped is kept a while, unserved, in case they come back (certificate-keeper.ts).
import { asc, desc, inArray } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { certificates, type Certificate, type Endpoint } from '../../db/schema/index.js';
import type { CertificateConfig, EndpointConfig } from '../../proxy/edge-config.js';
import type { KeyVault } from './key-vault.js';

/** The names an app's tls = "terminate" endpoints want ACME certificates for; 'all' when one is certificates = "manual" (it serves every certificate of its app). */
export type AcmeNamesWanted = Map<string, Set<string> | 'all'>;

export function acmeNamesWanted(terminating: readonly Pick<Endpoint, 'appId' | 'tls' | 'tlsOptions'>[]): AcmeNamesWanted {
  const out: AcmeNamesWanted = new Map();
  for (const e of terminating) {
    if (e.tls !== 'terminate') continue;
    const names = e.tlsOptions.acmeNames ?? [];
    const seen = out.get(e.appId);
    if (seen === 'all') continue;
    if (names.length === 0) {
      out.set(e.appId, 'all');
      continue;
    }
    const set = seen ?? new Set<string>();
    for (const n of names) set.add(n);
    out.set(e.appId, set);
  }
  return out;
}

/** Whether an ACME certificate's names are wanted by an endpoint of its app (uploads always are). */
export function isCertificateWanted(wanted: AcmeNamesWanted, appId: string, names: readonly string[]): boolean {
  const w = wanted.get(appId);
  return w === 'all' || (w !== undefined && names.some((n) => w.has(n)));
}

/**
 * Whether the feed serves a certificate: still valid, and uploaded or of a wanted ACME name. One
 * that is not (expired, or kept unused: certificate-keeper.ts) covers no endpoint of its app.
 */
export function isCertificateServed(wanted: AcmeNamesWanted | undefined, row: Pick<Certificate, 'appId' | 'names' | 'source' | 'notAfter'>, now: number): boolean {
  if (row.notAfter.getTime() <= now) return false;
  return row.source !== 'acme' || wanted === undefined || isCertificateWanted(wanted, row.appId, row.names);
}

export async function readServedCertificates(db: Db, appIds: string[], vault: KeyVault | undefined, log: Logger, wanted?: AcmeNamesWanted): Promise<Map<string, CertificateConfig[]>> {
  const out = new Map<string, CertificateConfig[]>();
  if (appIds.length === 0 || vault === undefined) return out;
  const rows = await db.select().from(certificates).where(inArray(certificates.appId, appIds)).orderBy(desc(certificates.notAfter), asc(certificates.id));
  const now = Date.now();
  for (const row of rows) {
    if (!isCertificateServed(wanted, row, now)) continue;
    let key: string;
    try {
      key = vault.open(row.keyEncrypted);
    } catch (err) {
      log.error({ err, certificate: row.id }, 'certificate key cannot be decrypted; not served');
      continue;
    }
    const list = out.get(row.appId) ?? [];
    list.push({ id: row.id, names: row.names, cert: row.chainPem, key });
    out.set(row.appId, list);
  }
  return out;
}

/** The endpoint's `tls: terminate` fields over the app's served certificates (newest first). */
export function terminateOptions(e: Endpoint, certs: CertificateConfig[]): Partial<EndpointConfig> {
  return {
    tls: 'terminate',
    terminate: {
      certificates: certs.map((c) => c.id),
      ...(e.tlsOptions.alpn === undefined ? {} : { alpn: e.tlsOptions.alpn }),
      ...(e.tlsOptions.clientCa === undefined ? {} : { clientCa: e.tlsOptions.clientCa }),
    },
  };
}
