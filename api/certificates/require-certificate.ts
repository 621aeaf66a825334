// A deploy with a tls = "terminate" endpoint needs a certificate the edge can serve: without one
// the endpoint could never be served, so the deploy is refused (in its transaction: nothing is
// applied) with the command that fixes it.
import { and, eq, gt } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { certificates } from '../../db/schema/index.js';
import type { EndpointSpec } from '../manifest.js';
import { PierError } from '../pier-error.js';

export async function requireCertificate(db: Db, appId: string, appName: string, wanted: EndpointSpec[]): Promise<void> {
  // certificates = "acme": Pier obtains them after the deploy (api/certificates/certificate-keeper.ts).
  const terminating = wanted.find((e) => e.tls === 'terminate' && e.certificates !== 'acme');
  if (terminating === undefined) return;
  const [usable] = await db
    .select({ id: certificates.id })
    .from(certificates)
    .where(and(eq(certificates.appId, appId), gt(certificates.notAfter, new Date())))
    .limit(1);
  if (usable !== undefined) return;
  throw new PierError('E_CERT_MISSING', `port ${terminating.port} has tls = "terminate" but app "${appName}" has no valid certificate`, {
    status: 409,
    hint: `run \`pier certs add --app ${appName} --cert FULLCHAIN.pem --key KEY.pem\`, then deploy again`,
  });
}
