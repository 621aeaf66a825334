// The tls-alpn-01 challenge certificates (RFC 8737) of ACME orders in progress, kept in the
// database (table acme_challenges) so the edge feed of every API server on it sends them to its
// edges in the snapshot (`acmeChallenges`): whichever edge the CA's validator reaches answers,
// whichever server runs the order. A challenge lives from just before Pier tells the CA to
// validate until the order is done (removed on success and failure), and is swept once expired
// if the server running the order died first.
//
// Rows are keyed by app, name and the CA's token, so two orders never overwrite each other's
// challenge. The snapshot carries one challenge per app and name, the newest (an older one is a
// leftover of an order that died), with its token: edges report the tokens they serve, and the
// order waits for its own (edges-applied.ts). An edge answers a validation on an endpoint with the
// challenge of that endpoint's app (proxy/tls/route-tls.ts), so when two apps claim one name each
// app's endpoint answers with its own challenge, and only the app whose address the name
// resolves to can pass the CA's validation.
//
// The server running the order refreshes its own feed at once; the others notice within a poll
// (`pollMs`, a read of the keys only) and refresh theirs. On a database no other server writes
// (the embedded one) there are no others: the table is looked at only to sweep expired rows.
import type { Logger } from 'pino';
import { and, desc, eq, gt, lte } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { acmeChallenges, apps } from '../../db/schema/index.js';
import type { AcmeChallengeConfig } from '../../proxy/edge-config.js';
import type { KeyVault } from './key-vault.js';

/** How long a challenge is kept when its order never ends (the server stopped mid-order). */
export const CHALLENGE_TTL_MS = 10 * 60_000;

const SWEEP_EVERY_MS = 60_000;
/** The poll on an exclusive database: often enough for the sweep, nothing else to find. */
const EXCLUSIVE_POLL_MS = SWEEP_EVERY_MS / 2;

export interface PendingChallenge {
  appId: string;
  name: string;
  token: string;
}

export interface AcmeChallenges {
  /** Stores the challenge and refreshes this server's feed; resolves with the time it was stored (ms). */
  put(challenge: PendingChallenge & { cert: string; key: string }): Promise<number>;
  /** Removes it (the order is done) and refreshes this server's feed. */
  remove(challenge: PendingChallenge): Promise<void>;
  /** What the edge snapshot carries: unexpired challenges, the newest per app and name, ordered. */
  read(): Promise<AcmeChallengeConfig[]>;
  /** Reads the keys, refreshes the feed for apps whose challenges changed, sweeps expired ones. */
  sync(): Promise<void>;
  start(): void;
  close(): void;
}

export interface AcmeChallengesOptions {
  db: Db;
  vault: KeyVault;
  log: Logger;
  /** Tells this server's edge feed an app's challenges changed. */
  onChange(appId: string): void;
  /** How often the table is looked at for other servers' challenges (default 1 s; `exclusive`: 30 s). */
  pollMs?: number;
  /** No other server writes this database (the embedded one): every change is this server's own. */
  exclusive?: boolean;
  ttlMs?: number;
}

export function createAcmeChallenges(options: AcmeChallengesOptions): AcmeChallenges {
  const { db, vault, onChange } = options;
  const log = options.log.child({ component: 'acme-challenges' });
  const ttlMs = options.ttlMs ?? CHALLENGE_TTL_MS;
  /** The keys seen at the last sync, by app. */
  let seen = new Map<string, string>();
  let timer: NodeJS.Timeout | null = null;
  let syncing: Promise<void> | null = null;
  let failing = false;
  let lastSweep = 0;

  async function sync(): Promise<void> {
    // Expired rows are never sent (read() skips them): sweeping them now and then is enough.
    if (Date.now() - lastSweep >= SWEEP_EVERY_MS) {
      await db.delete(acmeChallenges).where(lte(acmeChallenges.expiresAt, new Date()));
      lastSweep = Date.now();
    }
    const rows = await db
      .select({ appId: acmeChallenges.appId, hostname: acmeChallenges.hostname, token: acmeChallenges.token })
      .from(acmeChallenges)
      .orderBy(acmeChallenges.appId, acmeChallenges.hostname, acmeChallenges.token);
    const now = new Map<string, string>();
    for (const r of rows) now.set(r.appId, `${now.get(r.appId) ?? ''}${r.hostname}\0${r.token}\n`);
    for (const appId of new Set([...seen.keys(), ...now.keys()])) if (seen.get(appId) !== now.get(appId)) onChange(appId);
    seen = now;
  }

  function tick(): void {
    if (syncing !== null) return;
    syncing = sync()
      .then(
        () => {
          if (failing) log.info('challenges read again');
          failing = false;
        },
        (err: unknown) => {
          // The database may be away: the next poll tries again.
          if (!failing) log.warn({ err }, 'pending ACME challenges not read; retrying');
          failing = true;
        },
      )
      .finally(() => {
        syncing = null;
      });
  }

  return {
    async put({ appId, name, token, cert, key }) {
      await db
        .insert(acmeChallenges)
        .values({ appId, hostname: name.toLowerCase(), token, certPem: cert, keyEncrypted: vault.seal(key), expiresAt: new Date(Date.now() + ttlMs) })
        .onConflictDoUpdate({
          target: [acmeChallenges.appId, acmeChallenges.hostname, acmeChallenges.token],
          set: { certPem: cert, keyEncrypted: vault.seal(key), expiresAt: new Date(Date.now() + ttlMs) },
        });
      // After the commit: a snapshot built from now on carries it (api/edge-feed.ts versions).
      const at = Date.now();
      onChange(appId);
      return at;
    },
    async remove({ appId, name, token }) {
      await db.delete(acmeChallenges).where(and(eq(acmeChallenges.appId, appId), eq(acmeChallenges.hostname, name.toLowerCase()), eq(acmeChallenges.token, token)));
      onChange(appId);
    },
    async read() {
      const rows = await db
        .select({ app: apps.name, appId: acmeChallenges.appId, name: acmeChallenges.hostname, token: acmeChallenges.token, cert: acmeChallenges.certPem, key: acmeChallenges.keyEncrypted })
        .from(acmeChallenges)
        .innerJoin(apps, eq(apps.id, acmeChallenges.appId))
        .where(gt(acmeChallenges.expiresAt, new Date()))
        .orderBy(desc(acmeChallenges.createdAt), acmeChallenges.token);
      const newest = new Map<string, AcmeChallengeConfig>();
      for (const r of rows) {
        const k = `${r.appId}\0${r.name}`;
        if (newest.has(k)) continue;
        try {
          newest.set(k, { app: r.app, name: r.name, cert: r.cert, key: vault.open(r.key), token: r.token });
        } catch (err) {
          // Sealed by another server with another vault key: this one's edges cannot answer it.
          log.warn({ err, app: r.app, name: r.name }, 'ACME challenge key does not open with this server\'s key; not sent to its edges');
        }
      }
      return [...newest.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.app < b.app ? -1 : a.app > b.app ? 1 : 0));
    },
    sync,
    start() {
      if (timer !== null) return;
      tick();
      timer = setInterval(tick, options.pollMs ?? (options.exclusive ? EXCLUSIVE_POLL_MS : 1_000));
      timer.unref();
    },
    close() {
      if (timer !== null) clearInterval(timer);
      timer = null;
    },
  };
}
