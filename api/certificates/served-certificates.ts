// What the edge feed (api/edge-feed.ts) needs of an app's certificates: each one still valid, with
// its key decrypted, newest first (so a renewed certificate wins a name over the one it replaces,
// and is the default), and the endpoint's terminate settings naming them.
import { asc, desc, inArray } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { certificates, type Endpoint } from '../../db/schema/index.js';
import type { CertificateConfig, EndpointConfig } from '../../proxy/edge-config.js';
import type { KeyVault } from './key-vault.js';

export async function readServedCertificates(db: Db, appIds: string[], vault: KeyVault | undefined, log: Logger): Promise<Map<string, CertificateConfig[]>> {
  const out = new Map<string, CertificateConfig[]>();
  if (appIds.length === 0 || vault === undefined) return out;
  const rows = await db.select().from(certificates).where(inArray(certificates.appId, appIds)).orderBy(desc(certificates.notAfter), asc(certificates.id));
  const now = Date.now();
  for (const row of rows) {
    if (row.notAfter.getTime() <= now) continue;
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
