// The background task behind certificates = "acme": for each host name of an app's tls =
// "terminate" endpoints it keeps one valid certificate from the ACME CA (acme-issuer.ts),
// obtaining it after the deploy and renewing it `renewBeforeMs` before it expires. A new
// certificate and the removal of the one it replaces are one transaction with their event
// (`cert.issued` or `cert.renewed`), so nothing is half-applied; the edges then serve it on new
// handshakes while open connections keep theirs. A failure is an event (`cert.failed`, with the
// CA's reason) and the name waits, doubling from `retryMs` up to a day; the wait is kept in the
// database (acme_backoff), so a restarted server or another one on the database waits too. An
// ACME certificate of a name the app no longer lists is kept unserved for `keepDroppedMs`, reused
// if the name comes back, then removed with a `cert.removed` event (sweepUnlisted; certificates
// added with `pier certs add` are never touched). The keeper itself never throws: it logs and
// carries on.
import { and, eq, inArray, isNotNull, isNull } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { acmeBackoff, apps, certificates, endpoints } from '../../db/schema/index.js';
import type { EventLog } from '../event-log.js';
import { newId } from '../ids.js';
import type { Transactions } from '../transactions.js';
import type { AcmeConfig } from './acme-config.js';
import type { AcmeIssuer } from './acme-issuer.js';
import { checkCertificate } from './certificate-check.js';
import { acmeNamesWanted, isCertificateWanted } from './served-certificates.js';
import type { KeyVault } from './key-vault.js';
import type { AdvisoryLocks } from '../../db/advisory-locks.js';

const MAX_RETRY_MS = 86_400_000;

export interface CertificateKeeperOptions {
  db: Db;
  transactions: Transactions;
  events: EventLog;
  vault: KeyVault;
  issuer: AcmeIssuer;
  config: AcmeConfig;
  log: Logger;
  /** Tells the edge feed an app's certificates changed. */
  refresh(appId: string): void;
  /** Several API servers on one database: one orders at a time, so a name is never ordered twice. */
  locks?: AdvisoryLocks | undefined;
}

export interface CertificateKeeper {
  start(): void;
  /** Looks again soon (after a deploy changed endpoints); gathered with other calls. */
  wake(): void;
  /** One pass: obtains and renews what is due. Never throws. */
  runOnce(): Promise<void>;
  close(): Promise<void>;
}

interface Wanted {
  appId: string;
  orgId: string;
  app: string;
  name: string;
}

export function createCertificateKeeper(options: CertificateKeeperOptions): CertificateKeeper {
  const { db, config, log } = options;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;

  async function wanted(): Promise<Wanted[]> {
    const rows = await db
      .select({ appId: endpoints.appId, tlsOptions: endpoints.tlsOptions, app: apps.name, orgId: apps.orgId })
      .from(endpoints)
      .innerJoin(apps, eq(apps.id, endpoints.appId))
      .where(and(eq(endpoints.tls, 'terminate'), isNull(apps.deletedAt)));
    const out = new Map<string, Wanted>();
    for (const r of rows) for (const name of r.tlsOptions.acmeNames ?? []) out.set(`${r.appId}\0${name}`, { appId: r.appId, orgId: r.orgId, app: r.app, name });
    return [...out.values()];
  }

  async function pass(): Promise<void> {
    const list = await wanted();
    await sweepUnlisted(db, options.transactions, list, config.keepDroppedMs, log, options.refresh);
    if (list.length === 0) return;
    const appIds = [...new Set(list.map((w) => w.appId))];
    const held = await db
      .select({ id: certificates.id, appId: certificates.appId, names: certificates.names, notAfter: certificates.notAfter })
      .from(certificates)
      .where(and(inArray(certificates.appId, appIds), eq(certificates.source, 'acme')));
    const waits = await db.select().from(acmeBackoff).where(inArray(acmeBackoff.appId, appIds));
    const backoff = new Map(waits.map((b) => [`${b.appId}\0${b.hostname}`, b]));
    for (const w of list) {
      if (closed) return;
      const mine = held.filter((c) => c.appId === w.appId && c.names.length === 1 && c.names[0] === w.name);
      const newest = mine.reduce<(typeof mine)[number] | undefined>((a, c) => (a === undefined || c.notAfter > a.notAfter ? c : a), undefined);
      const now = Date.now();
      if (newest !== undefined && newest.notAfter.getTime() - now > config.renewBeforeMs) continue;
      const wait = backoff.get(`${w.appId}\0${w.name}`);
      if (wait !== undefined && wait.nextAt.getTime() > now) continue;
      await obtain(w, newest?.id ?? null, mine.map((c) => c.id), wait?.failures ?? 0);
    }
  }

  async function obtain(w: Wanted, replacing: string | null, old: string[], failedBefore: number): Promise<void> {
    const started = Date.now();
    try {
      const issued = await options.issuer.issue({ appId: w.appId, app: w.app, name: w.name });
      const checked = checkCertificate(issued.chainPem, issued.keyPem);
      const id = newId('cert');
      const type = replacing === null ? 'cert.issued' : 'cert.renewed';
      await options.transactions.run(async (t) => {
        await t.tx.insert(certificates).values({
          id,
          appId: w.appId,
          names: checked.names,
          chainPem: checked.chainPem,
          keyEncrypted: options.vault.seal(checked.keyPem),
          fingerprint: checked.fingerprint,
          issuer: checked.issuer,
          notBefore: checked.notBefore,
          notAfter: checked.notAfter,
          source: 'acme',
        });
        if (old.length > 0) await t.tx.delete(certificates).where(inArray(certificates.id, old));
        await t.tx.delete(acmeBackoff).where(and(eq(acmeBackoff.appId, w.appId), eq(acmeBackoff.hostname, w.name)));
        await t.record({
          orgId: w.orgId,
          appId: w.appId,
          type,
          reason: 'acme',
          message: `certificate ${id} for ${w.name} ${replacing === null ? 'issued' : `renewed (replaces ${replacing})`} by ${checked.issuer}, expires ${checked.notAfter.toISOString()}`,
          data: { certificate: id, name: w.name, replaces: replacing, issuer: checked.issuer, notAfter: checked.notAfter.toISOString(), ms: Date.now() - started },
        });
      });
      log.info({ app: w.app, name: w.name, certificate: id, type }, 'acme certificate stored');
      options.refresh(w.appId);
    } catch (err) {
      const failures = failedBefore + 1;
      const delay = Math.min(config.retryMs * 2 ** (failures - 1), MAX_RETRY_MS);
      const nextAt = Date.now() + delay;
      const reason = ((err as Error).message ?? String(err)).slice(0, 2000);
      // Kept before the event: if the database is away both fail, and the next pass tries again.
      await db
        .insert(acmeBackoff)
        .values({ appId: w.appId, hostname: w.name, failures, nextAt: new Date(nextAt), lastError: reason })
        .onConflictDoUpdate({ target: [acmeBackoff.appId, acmeBackoff.hostname], set: { failures, nextAt: new Date(nextAt), lastError: reason } })
        .catch((e: unknown) => log.warn({ err: e, app: w.app, name: w.name }, 'acme backoff not stored'));
      log.warn({ err, app: w.app, name: w.name, attempt: failures }, 'acme certificate not obtained');
      await options.events
        .record({
          orgId: w.orgId,
          appId: w.appId,
          type: 'cert.failed',
          reason: 'acme',
          message: `no certificate for ${w.name} from the ACME CA: ${reason} (attempt ${failures}; next try ${new Date(nextAt).toISOString()})`,
          data: { name: w.name, error: reason, attempt: failures, nextAttemptAt: new Date(nextAt).toISOString(), renewing: replacing },
        })
        .catch((e: unknown) => log.warn({ err: e }, 'cert.failed event not recorded'));
    }
  }

  function runOnce(): Promise<void> {
    if (running !== null) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          const lock = options.locks ? await options.locks.tryLock('pier:certificate-keeper') : null;
          // Another server is at it: its pass covers every name.
          if (options.locks && !lock) return;
          try {
            await pass();
          } finally {
            await lock?.release();
          }
        } catch (err) {
          // The database may be away: the next pass tries again.
          log.warn({ err }, 'certificate keeper pass failed');
        }
      } while (again && !closed);
    })().finally(() => {
      running = null;
    });
    return running;
  }

  function schedule(ms: number): void {
    if (closed) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void runOnce().then(() => schedule(config.checkEveryMs));
    }, ms);
    timer.unref();
  }

  return {
    start: () => schedule(0),
    wake: () => schedule(200),
    runOnce,
    async close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      // An order in flight may wait on the CA for long: shutdown does not. What it would store
      // after the database closes fails and is caught; the name is tried again after the restart.
      if (running !== null) await Promise.race([running, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    },
  };
}

/**
 * ACME certificates (never uploaded ones) whose names no endpoint of their app lists any more are
 * kept `keepDroppedMs`, unserved (served-certificates.ts), so a name dropped by mistake, or by a
 * deploy that is rolled back, comes back with its certificate and no new order (the CA limits
 * duplicate certificates: Let's Encrypt allows 5 a week for one set of names). Each step is one
 * transaction with its event: `cert.unused` when it is set aside (with the time it goes),
 * `cert.reused` when a name comes back, `cert.removed` once the time is over (or it expired). Apps
 * being deleted are left to the delete. An app with a `certificates = "manual"` terminate endpoint
 * wants them all: such an endpoint serves every certificate of its app, and its deploy was
 * accepted on the strength of them (require-certificate.ts); they expire, or `pier certs remove`
 * them. The backoff of names no longer listed goes at once.
 */
async function sweepUnlisted(db: Db, transactions: Transactions, list: Wanted[], keepDroppedMs: number, log: Logger, refresh: (appId: string) => void): Promise<void> {
  const listed = new Set(list.map((w) => `${w.appId}\0${w.name}`));
  // The same rule as the feed's, which stops serving such a certificate (served-certificates.ts).
  const terminating = await db.select({ appId: endpoints.appId, tls: endpoints.tls, tlsOptions: endpoints.tlsOptions }).from(endpoints).where(eq(endpoints.tls, 'terminate'));
  const names = acmeNamesWanted(terminating);
  const held = await db
    .select({ id: certificates.id, appId: certificates.appId, names: certificates.names, notAfter: certificates.notAfter, unusedSince: certificates.unusedSince, removeAfter: certificates.removeAfter, orgId: apps.orgId, app: apps.name })
    .from(certificates)
    .innerJoin(apps, eq(apps.id, certificates.appId))
    .where(and(eq(certificates.source, 'acme'), isNull(apps.deletedAt)));
  for (const c of held) {
    const listing = c.names.join(', ');
    const now = new Date();
    if (isCertificateWanted(names, c.appId, c.names)) {
      if (c.unusedSince === null) continue;
      await transactions.run(async (t) => {
        const [back] = await t.tx
          .update(certificates)
          .set({ unusedSince: null, removeAfter: null })
          .where(and(eq(certificates.id, c.id), isNotNull(certificates.unusedSince)))
          .returning({ id: certificates.id });
        if (back === undefined) return; // another server saw it first
        await t.record({
          orgId: c.orgId,
          appId: c.appId,
          type: 'cert.reused',
          reason: 'acme-name-listed',
          message: `certificate ${c.id} for ${listing} is in use again (unused since ${c.unusedSince!.toISOString()}): the app lists ${c.names.length === 1 ? 'that name' : 'those names'} again; no new order`,
          data: { certificate: c.id, names: c.names, unusedSince: c.unusedSince!.toISOString(), notAfter: c.notAfter.toISOString() },
        });
      });
      log.info({ app: c.app, certificate: c.id, names: c.names }, 'acme certificate of a listed name again in use');
      continue;
    }
    if (c.unusedSince === null && keepDroppedMs > 0 && c.notAfter > now) {
      const removeAfter = new Date(now.getTime() + keepDroppedMs);
      await transactions.run(async (t) => {
        const [set] = await t.tx
          .update(certificates)
          .set({ unusedSince: now, removeAfter })
          .where(and(eq(certificates.id, c.id), isNull(certificates.unusedSince)))
          .returning({ id: certificates.id });
        if (set === undefined) return;
        await t.record({
          orgId: c.orgId,
          appId: c.appId,
          type: 'cert.unused',
          reason: 'acme-name-unlisted',
          message: `certificate ${c.id} for ${listing} is no longer served: the app no longer lists ${c.names.length === 1 ? 'that name' : 'those names'} for certificates = "acme"; kept until ${removeAfter.toISOString()} in case ${c.names.length === 1 ? 'it comes' : 'they come'} back (PIER_ACME_KEEP_DROPPED), then removed`,
          data: { certificate: c.id, names: c.names, source: 'acme', removeAfter: removeAfter.toISOString() },
        });
      });
      log.info({ app: c.app, certificate: c.id, names: c.names, removeAfter }, 'acme certificate of an unlisted name kept unused');
      continue;
    }
    // Kept long enough, expired while kept, or nothing is kept (PIER_ACME_KEEP_DROPPED=0s).
    if (c.removeAfter !== null && c.removeAfter > now && c.notAfter > now) continue;
    await transactions.run(async (t) => {
      const [gone] = await t.tx.delete(certificates).where(and(eq(certificates.id, c.id), eq(certificates.source, 'acme'))).returning({ id: certificates.id });
      if (gone === undefined) return; // another server removed it first
      const why = c.unusedSince === null ? '' : ` (unused since ${c.unusedSince.toISOString()}${c.notAfter <= now ? ', expired' : ''})`;
      await t.record({
        orgId: c.orgId,
        appId: c.appId,
        type: 'cert.removed',
        reason: 'acme-name-unlisted',
        message: `certificate ${c.id} for ${listing} removed: the app no longer lists ${c.names.length === 1 ? 'that name' : 'those names'} for certificates = "acme"${why}`,
        data: { certificate: c.id, names: c.names, source: 'acme', unusedSince: c.unusedSince?.toISOString() ?? null },
      });
    });
    log.info({ app: c.app, certificate: c.id, names: c.names }, 'acme certificate of an unlisted name removed');
    refresh(c.appId);
  }
  const waits = await db.select({ appId: acmeBackoff.appId, hostname: acmeBackoff.hostname }).from(acmeBackoff);
  for (const b of waits) {
    if (!listed.has(`${b.appId}\0${b.hostname}`)) await db.delete(acmeBackoff).where(and(eq(acmeBackoff.appId, b.appId), eq(acmeBackoff.hostname, b.hostname)));
  }
}
