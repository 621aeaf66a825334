// Certificates as resources (`pier certs`): add one to an app (checked whole before it is stored,
// api/certificates/certificate-check.ts; its key sealed by the key vault), list an app's, describe
// one, remove one. Every change refreshes the edge feed, so edges serve it on new handshakes.
import { and, desc, eq, ne } from 'drizzle-orm';
import { Hono } from 'hono';
import { z } from 'zod';
import { apps, certificates, endpoints, type Certificate } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import { checkCertificate } from '../certificates/certificate-check.js';
import type { KeyVault } from '../certificates/key-vault.js';
import { acmeNamesWanted, isCertificateServed } from '../certificates/served-certificates.js';
import { newId } from '../ids.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, readJson } from '../request.js';
import { createTransactions } from '../transactions.js';

/** As the manifest's app names. */
const APP_NAME = /^[a-z][a-z0-9-]{0,39}$/;

const addBody = z.object({
  cert: z.string().min(1).max(200_000).describe('PEM chain, leaf first'),
  key: z.string().min(1).max(50_000).describe('PEM private key (unencrypted); stored encrypted'),
});

export const certificateViewSchema = z.object({
  id: z.string(),
  app: z.string(),
  names: z.array(z.string()),
  fingerprint: z.string().describe('SHA-256 of the leaf'),
  issuer: z.string(),
  notBefore: z.string(),
  notAfter: z.string(),
  source: z.string().describe('upload or acme'),
  createdAt: z.string(),
  daysLeft: z.number(),
  unusedSince: z.string().nullable().describe('acme only: since when no endpoint of the app lists its names; it is not served then'),
  removeAfter: z.string().nullable().describe('acme only, when unused: the keeper removes it at its first check after this time, unless a name comes back (PIER_ACME_KEEP_DROPPED)'),
});
export type CertificateView = z.infer<typeof certificateViewSchema>;

describeRoute({
  method: 'post',
  path: '/v1/apps/:app/certs',
  scope: 'deploy',
  summary: "Add a TLS certificate to an app; its tls = \"terminate\" endpoints serve it on new handshakes",
  description:
    '422 with E_CERT_INVALID, E_CERT_KEY_INVALID, E_CERT_KEY_MISMATCH, E_CERT_CHAIN, E_CERT_EXPIRED, E_CERT_NOT_YET_VALID or E_CERT_NO_NAMES when the certificate is not usable; nothing is stored then.',
  body: addBody,
  response: z.object({ certificate: certificateViewSchema }),
  status: [201],
  errors: [404, 422],
});
describeRoute({ method: 'get', path: '/v1/apps/:app/certs', scope: 'read', summary: "An app's certificates, newest first", response: z.object({ certificates: z.array(certificateViewSchema) }), errors: [404] });
describeRoute({ method: 'get', path: '/v1/certs/:id', scope: 'read', summary: 'One certificate (never its key) with its PEM chain', response: z.object({ certificate: certificateViewSchema.extend({ chain: z.string() }) }), errors: [404] });
describeRoute({
  method: 'delete',
  path: '/v1/certs/:id',
  scope: 'deploy',
  summary: 'Remove a certificate; new handshakes stop getting it, established connections carry on',
  description: '409 E_CERT_IN_USE when it is the last certificate served to a tls = "terminate" endpoint of its app (expired ones and ACME ones kept unused serve nothing and do not count).',
  response: z.object({ certificate: certificateViewSchema }),
  errors: [404, 409],
});

export function certRoutes(deps: ApiDeps & { keyVault?: KeyVault | undefined }) {
  const r = new Hono<ApiEnv>();
  const { db } = deps;
  const transactions = createTransactions({ db, events: deps.events });
  const vault = deps.keyVault;
  if (vault === undefined) return r;

  const view = (row: Certificate, app: string): CertificateView => ({
    id: row.id,
    app,
    names: row.names,
    fingerprint: row.fingerprint,
    issuer: row.issuer,
    notBefore: row.notBefore.toISOString(),
    notAfter: row.notAfter.toISOString(),
    source: row.source,
    createdAt: row.createdAt.toISOString(),
    daysLeft: Math.floor((row.notAfter.getTime() - Date.now()) / 86_400_000),
    unusedSince: row.unusedSince?.toISOString() ?? null,
    removeAfter: row.removeAfter?.toISOString() ?? null,
  });

  const findCert = async (c: { get(k: 'auth'): ApiEnv['Variables']['auth'] }, id: string) => {
    const auth = c.get('auth');
    const [row] = await db
      .select({ cert: certificates, app: apps })
      .from(certificates)
      .innerJoin(apps, eq(apps.id, certificates.appId))
      .where(and(eq(certificates.id, id), eq(apps.orgId, auth.orgId)))
      .limit(1);
    if (!row || (auth.appId !== null && auth.appId !== row.app.id) || row.app.deletedAt !== null) {
      throw new PierError('E_CERT_NOT_FOUND', `no certificate "${id}"`, { status: 404, hint: '`pier certs list --app APP` shows the ids' });
    }
    return row;
  };

  const findOrCreateApp = async (auth: ApiEnv['Variables']['auth'], name: string) => {
    try {
      return await findApp(db, auth, name);
    } catch (err) {
      if (auth.appId !== null || !(err instanceof PierError) || err.code !== 'E_APP_NOT_FOUND' || !APP_NAME.test(name)) throw err;
      await db.insert(apps).values({ id: newId('app'), orgId: auth.orgId, name }).onConflictDoNothing();
      return findApp(db, auth, name);
    }
  };

  r.post('/apps/:app/certs', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'deploy');
    const body = parseBody(addBody, await readJson(c.req));
    const checked = checkCertificate(body.cert, body.key);
    // A certificate may come before the app's first deploy (which needs it for tls = "terminate"):
    // the app is created then, as a deploy would create it.
    const app = await findOrCreateApp(auth, c.req.param('app'));
    const [row] = await db
      .insert(certificates)
      .values({
        id: newId('cert'),
        appId: app.id,
        names: checked.names,
        chainPem: checked.chainPem,
        keyEncrypted: vault.seal(checked.keyPem),
        fingerprint: checked.fingerprint,
        issuer: checked.issuer,
        notBefore: checked.notBefore,
        notAfter: checked.notAfter,
        source: 'upload',
      })
      .returning();
    await deps.events.record({
      orgId: app.orgId,
      appId: app.id,
      type: 'cert.added',
      reason: 'upload',
      message: `certificate ${row!.id} for ${checked.names.join(', ')} added (expires ${checked.notAfter.toISOString()})`,
      data: { certificate: row!.id, names: checked.names, notAfter: checked.notAfter.toISOString(), tokenId: auth.tokenId },
    });
    deps.edgeFeed.refresh(app.id);
    return c.json({ certificate: view(row!, app.name) }, 201);
  });

  r.get('/apps/:app/certs', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(db, auth, c.req.param('app'));
    const rows = await db.select().from(certificates).where(eq(certificates.appId, app.id)).orderBy(desc(certificates.notAfter));
    return c.json({ certificates: rows.map((row) => view(row, app.name)) });
  });

  r.get('/certs/:id', async (c) => {
    requireScope(c.get('auth'), 'read');
    const { cert, app } = await findCert(c, c.req.param('id'));
    return c.json({ certificate: { ...view(cert, app.name), chain: cert.chainPem } });
  });

  r.delete('/certs/:id', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'deploy');
    const { cert, app } = await findCert(c, c.req.param('id'));
    // Only what the edge serves covers an endpoint: an expired certificate, or an ACME one kept
    // unused after its names left the manifest (PIER_ACME_KEEP_DROPPED), serves nothing, so it
    // neither counts as a replacement nor is refused itself. The check and the delete are one
    // transaction holding the app's row, so two removals at once cannot each count the other as
    // the replacement and leave the endpoint with none.
    await transactions.run(async (t) => {
      await t.tx.select({ id: apps.id }).from(apps).where(eq(apps.id, app.id)).for('update');
      const [still] = await t.tx.select({ id: certificates.id }).from(certificates).where(eq(certificates.id, cert.id));
      if (!still) throw new PierError('E_CERT_NOT_FOUND', `certificate ${cert.id} was removed meanwhile`, { status: 404, hint: '`pier certs list --app APP` shows the ids' });
      const terminating = await t.tx
        .select({ port: endpoints.port, appId: endpoints.appId, tls: endpoints.tls, tlsOptions: endpoints.tlsOptions })
        .from(endpoints)
        .where(and(eq(endpoints.appId, app.id), eq(endpoints.tls, 'terminate')))
        .orderBy(endpoints.port);
      const wanted = acmeNamesWanted(terminating);
      const now = Date.now();
      if (terminating[0] !== undefined && isCertificateServed(wanted, cert, now)) {
        const others = await t.tx
          .select({ appId: certificates.appId, names: certificates.names, source: certificates.source, notAfter: certificates.notAfter })
          .from(certificates)
          .where(and(eq(certificates.appId, app.id), ne(certificates.id, cert.id)));
        if (!others.some((o) => isCertificateServed(wanted, o, now))) {
          throw new PierError('E_CERT_IN_USE', `certificate ${cert.id} is the last one app "${app.name}" serves, and its port ${terminating[0].port} terminates TLS`, {
            status: 409,
            hint: 'add the replacement first (`pier certs add`), or deploy without tls = "terminate"',
          });
        }
      }
      await t.tx.delete(certificates).where(eq(certificates.id, cert.id));
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        type: 'cert.removed',
        reason: 'request',
        message: `certificate ${cert.id} for ${cert.names.join(', ')} removed`,
        data: { certificate: cert.id, names: cert.names, tokenId: auth.tokenId },
      });
    });
    deps.edgeFeed.refresh(app.id);
    return c.json({ certificate: view(cert, app.name) });
  });

  return r;
}
