// Obtains one certificate for one host name from an ACME CA (RFC 8555) with the tls-alpn-01
// challenge (RFC 8737), through the `acme-client` package: order, challenge certificate put on
// the edges through the database (acme-challenges.ts), a wait until the edges report they serve
// its token (edges-applied.ts), validation, CSR with a fresh P-256 key, chain. The account key
// is made once and kept in the data folder sealed by the key vault, like certificates' keys.
import https from 'node:https';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import acme from 'acme-client';
import type { Logger } from 'pino';
import type { AcmeChallenges } from './acme-challenges.js';
import type { AcmeConfig } from './acme-config.js';
import type { AwaitedChallenge, EdgesApplied } from './edges-applied.js';
import type { KeyVault } from './key-vault.js';

export const ACME_ACCOUNT_FILE = 'acme-account.key';

export interface IssueRequest {
  appId: string;
  app: string;
  name: string;
}

export interface Issued {
  chainPem: string;
  keyPem: string;
}

export interface AcmeIssuer {
  /** Throws with the CA's reason (e.g. its problem document's detail) when it refuses or validation fails. */
  issue(request: IssueRequest): Promise<Issued>;
}

export interface AcmeIssuerOptions {
  config: AcmeConfig;
  vault: KeyVault;
  dataDir: string;
  challenges: AcmeChallenges;
  /** Resolves once every live edge reports it serves the challenge, or the wait is over. */
  waitForEdges(challenge: AwaitedChallenge): Promise<EdgesApplied>;
  log: Logger;
}

export function createAcmeIssuer(options: AcmeIssuerOptions): AcmeIssuer {
  const { config, challenges } = options;
  // acme-client sends through its own axios instance: the directory's CA is trusted there only,
  // never process-wide. No keep-alive: an idle connection to the CA must not hold a stopping server.
  if (config.ca !== undefined) acme.axios.defaults.httpsAgent = new https.Agent({ ca: config.ca, keepAlive: false });
  let client: Promise<acme.Client> | null = null;

  async function account(): Promise<acme.Client> {
    const accountKey = await loadAccountKey(options.dataDir, options.vault);
    const c = new acme.Client({ directoryUrl: config.directoryUrl, accountKey, backoffMin: 300, backoffMax: 10_000, backoffAttempts: 12 });
    await c.createAccount({ termsOfServiceAgreed: true, ...(config.email === undefined ? {} : { contact: [`mailto:${config.email}`] }) });
    return c;
  }

  return {
    async issue({ appId, app, name }) {
      client ??= account().catch((err: unknown) => {
        client = null; // the next try makes the account again
        throw err;
      });
      const c = await client;
      const order = await c.createOrder({ identifiers: [{ type: 'dns', value: name }] });
      const [authz] = await c.getAuthorizations(order);
      if (authz === undefined) throw new Error('the CA returned an order without an authorization');
      if (authz.status !== 'valid') {
        const challenge = authz.challenges.find((ch) => (ch.type as string) === 'tls-alpn-01');
        if (challenge === undefined) throw new Error(`the CA offers no tls-alpn-01 challenge for ${name} (offered: ${authz.challenges.map((ch) => ch.type).join(', ')})`);
        const keyAuthorization = await c.getChallengeKeyAuthorization(challenge);
        const [challengeKey, challengeCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
        const pending = { appId, name, token: challenge.token };
        const since = await challenges.put({ ...pending, cert: challengeCert.toString(), key: challengeKey.toString() });
        try {
          // The validator may come at once: every edge must answer before the CA is told to look.
          const edges = await options.waitForEdges({ token: challenge.token, since });
          if (edges.byVersion.length > 0) {
            // Such an edge may lack the challenge yet report a newer snapshot (edges-applied.ts).
            options.log.warn({ app, name, edges: edges.byVersion }, 'edges report no ACME challenge tokens (older than this server); their snapshot version stands in: upgrade them');
          }
          if (!edges.confirmed) {
            options.log.warn({ app, name, waiting: edges.waiting }, 'edges did not confirm the ACME challenge in time; asking the CA to validate anyway');
          } else if (edges.live === 0) {
            options.log.warn({ app, name }, 'no edge is live to answer the ACME challenge; asking the CA to validate anyway');
          } else {
            options.log.info({ app, name, edges: edges.live, ms: Date.now() - since }, 'ACME challenge confirmed by the edges');
          }
          await c.completeChallenge(challenge);
          await c.waitForValidStatus(challenge);
        } finally {
          await challenges.remove(pending).catch((err: unknown) => options.log.warn({ err, app, name }, 'ACME challenge not removed; it is swept when it expires'));
        }
      }
      const key = await acme.crypto.createPrivateEcdsaKey('P-256');
      const [, csr] = await acme.crypto.createCsr({ commonName: name, altNames: [name] }, key);
      const finalized = await c.finalizeOrder(order, csr);
      const chainPem = await c.getCertificate(finalized);
      return { chainPem, keyPem: key.toString() };
    },
  };
}

async function loadAccountKey(dataDir: string, vault: KeyVault): Promise<Buffer> {
  const file = join(dataDir, ACME_ACCOUNT_FILE);
  try {
    return Buffer.from(vault.open((await readFile(file, 'utf8')).trim()));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = await acme.crypto.createPrivateEcdsaKey('P-256');
  await writeFile(file, vault.seal(key.toString()) + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  return Buffer.from(vault.open((await readFile(file, 'utf8')).trim()));
}
