// Secrets per app and environment: set, unset, list (names, versions, digests; never values) and
// copy between environments, naming each key. Each change is a new version row, and the app's
// running release is copied into a new one that pins the new versions (api/deploy-service.ts
// `withSecrets`), so a secret change rolls out like a deploy and rolls back like one. Values are
// decrypted only to start a container (secretValues) or to copy them; no event, log line or
// answer carries one. A preview starts with none: nothing is inherited from its base.
import { and, desc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, secrets, type Release } from '../db/schema/index.js';
import { findApp, requireScope, type AuthContext } from './auth.js';
import type { DeployResult } from './deploy-service.js';
import { checkEnvironmentName, environmentForbidden, environmentOf, matchesPattern } from './environment-names.js';
import { newId } from './ids.js';
import { PierError } from './pier-error.js';
import type { SecretBox } from './secret-box.js';
import type { Transactions } from './transactions.js';

export const SECRET_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const MAX_SECRET_BYTES = 64 * 1024;

export interface SecretListing {
  key: string;
  version: number;
  digest: string;
  updatedAt: string;
}

export interface SecretServiceOptions {
  db: Db;
  transactions: Transactions;
  /** Null: the server has no key (secrets are refused with E_SECRETS_UNAVAILABLE). */
  box: SecretBox | null;
  /** Copies the app's current release into one with its current secret versions, and rolls it out. */
  release: (auth: AuthContext, appName: string, why: string) => Promise<DeployResult | null>;
}

/** KEY → the newest version of each key that is set (an unset hides the key). */
export async function currentSecretVersions(tx: Db, appId: string): Promise<Record<string, number>> {
  const rows = await tx.select({ key: secrets.key, version: secrets.version, set: secrets.ciphertext }).from(secrets).where(eq(secrets.appId, appId)).orderBy(secrets.key, desc(secrets.version));
  const out: Record<string, number> = {};
  const seen = new Set<string>();
  for (const r of rows) {
    if (seen.has(r.key)) continue;
    seen.add(r.key);
    if (r.set !== null) out[r.key] = r.version;
  }
  return out;
}

export function createSecretService(options: SecretServiceOptions) {
  const { db, transactions } = options;

  function box(): SecretBox {
    if (!options.box) throw new PierError('E_SECRETS_UNAVAILABLE', 'this server has no secret key', { status: 503, hint: 'secrets need `pier server` with a data folder, where it keeps secrets.key' });
    return options.box;
  }

  /** Writes versions for the app in one transaction; returns the keys whose value changed. */
  async function write(auth: AuthContext, appId: string, orgId: string, values: Record<string, string | null>): Promise<string[]> {
    const sealer = box();
    return transactions.run(async (t) => {
      await t.tx.select({ id: apps.id }).from(apps).where(eq(apps.id, appId)).for('no key update');
      const keys = Object.keys(values);
      const rows = await t.tx.select().from(secrets).where(and(eq(secrets.appId, appId), inArray(secrets.key, keys))).orderBy(desc(secrets.version));
      const changed: string[] = [];
      for (const key of keys.sort()) {
        const latest = rows.find((r) => r.key === key);
        const value = values[key] ?? null;
        const sealed = value === null ? null : sealer.seal(value);
        // Setting the same value again, or unsetting what is not set, changes nothing.
        if (value === null ? !latest || latest.ciphertext === null : latest?.digest === sealed?.digest && latest?.keyId === sealed?.keyId) continue;
        await t.tx.insert(secrets).values({ id: newId('sec'), appId, key, version: (latest?.version ?? 0) + 1, ciphertext: sealed?.ciphertext ?? null, digest: sealed?.digest ?? null, keyId: sealed?.keyId ?? null, createdBy: auth.tokenId });
        changed.push(key);
      }
      if (changed.length) {
        await t.record({
          orgId,
          appId,
          type: value0(values, changed) === null ? 'secret.unset' : 'secret.set',
          reason: 'secrets',
          // Names only: a value never goes into an event.
          message: `secrets ${Object.values(values).every((v) => v === null) ? 'unset' : 'set'}: ${changed.join(', ')}`,
          data: { keys: changed, environment: environmentOf(auth), by: auth.tokenId },
        });
      }
      return changed;
    });
  }

  return {
    async list(auth: AuthContext, appName: string): Promise<SecretListing[]> {
      requireScope(auth, 'read');
      const app = await findApp(db, auth, appName);
      const versions = await currentSecretVersions(db, app.id);
      const keys = Object.keys(versions);
      if (!keys.length) return [];
      const rows = await db.select().from(secrets).where(and(eq(secrets.appId, app.id), inArray(secrets.key, keys)));
      return keys
        .sort()
        .map((key) => rows.find((r) => r.key === key && r.version === versions[key]))
        .filter((r) => r !== undefined)
        .map((r) => ({ key: r.key, version: r.version, digest: r.digest ?? '', updatedAt: r.createdAt.toISOString() }));
    },

    async set(auth: AuthContext, appName: string, values: Record<string, string | null>): Promise<{ changed: string[]; release: DeployResult | null }> {
      requireScope(auth, 'deploy');
      for (const [key, value] of Object.entries(values)) checkSecret(key, value);
      const app = await findApp(db, auth, appName);
      const changed = await write(auth, app.id, app.orgId, values);
      const release = changed.length ? await options.release(auth, appName, `secrets changed: ${changed.join(', ')}`) : null;
      return { changed, release };
    },

    /** Copies KEYS of the same app from one environment to the request's; each key must be named. */
    async copy(auth: AuthContext, appName: string, from: string, keys: string[]): Promise<{ changed: string[]; release: DeployResult | null }> {
      requireScope(auth, 'deploy');
      checkEnvironmentName(from, 'source environment');
      if (!matchesPattern(from, auth.environments)) throw environmentForbidden(from, auth.environments ?? '');
      if (keys.length === 0) throw new PierError('E_BAD_REQUEST', 'name each key to copy', { status: 400, hint: 'e.g. `pier secrets copy --from staging --to pr-42 --app web DATABASE_URL`' });
      const source = await findApp(db, { ...auth, environment: from }, appName);
      const versions = await currentSecretVersions(db, source.id);
      const missing = keys.filter((k) => versions[k] === undefined);
      if (missing.length) throw new PierError('E_SECRET_NOT_FOUND', `${appName} in ${from} has no secret ${missing.join(', ')}`, { status: 404, hint: `\`pier secrets list --app ${appName} --env ${from}\` lists its keys` });
      const rows = await db.select().from(secrets).where(and(eq(secrets.appId, source.id), inArray(secrets.key, keys)));
      const sealer = box();
      const values: Record<string, string> = {};
      for (const k of keys) {
        const row = rows.find((r) => r.key === k && r.version === versions[k]);
        if (row?.ciphertext) values[k] = sealer.open(row.ciphertext, row.keyId);
      }
      const target = await findApp(db, auth, appName);
      const changed = await write(auth, target.id, target.orgId, values);
      const release = changed.length ? await options.release(auth, appName, `secrets copied from ${from}: ${changed.join(', ')}`) : null;
      return { changed, release };
    },
  };
}

export type SecretService = ReturnType<typeof createSecretService>;

/** The values of the secret versions a release pins, for its containers' environment. */
export async function secretValues(db: Db, box: SecretBox, release: Release): Promise<Record<string, string>> {
  const pinned = release.secrets ?? {};
  const keys = Object.keys(pinned);
  if (!keys.length) return {};
  const rows = await db.select().from(secrets).where(and(eq(secrets.appId, release.appId), inArray(secrets.key, keys)));
  const out: Record<string, string> = {};
  for (const key of keys) {
    const row = rows.find((r) => r.key === key && r.version === pinned[key]);
    if (row?.ciphertext) out[key] = box.open(row.ciphertext, row.keyId);
  }
  return out;
}

function checkSecret(key: string, value: string | null): void {
  if (!SECRET_KEY.test(key) || key.startsWith('PIER_')) {
    throw new PierError('E_BAD_SECRET', `"${key.slice(0, 60)}" is not a secret name`, { status: 400, hint: 'a name is a variable name (A-Z, 0-9, "_", not starting with a digit) and does not start with PIER_' });
  }
  if (value !== null && (Buffer.byteLength(value) > MAX_SECRET_BYTES || value.includes('\0'))) {
    throw new PierError('E_BAD_SECRET', `the value of ${key} is larger than 64 KiB or holds a NUL byte`, { status: 400, hint: 'keep secrets small; mount larger files as volumes' });
  }
}

function value0(values: Record<string, string | null>, changed: string[]): string | null {
  return values[changed[0] ?? ''] ?? null;
}
