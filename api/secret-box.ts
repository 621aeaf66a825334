// Encryption of secret values at rest: AES-256-GCM under a 32-byte key kept in the server's data
// folder (`secrets.key`, mode 0600), never in the database, so a copy of the database (a backup,
// a dump) holds no readable secret. Older keys (`secrets.key.old-*`) still decrypt what they
// encrypted, which is how a key is rotated (docs/secrets.md). The digest shown by `pier secrets
// list` is an HMAC under a key derived from the encryption key: equal values compare equal, and
// the database alone cannot confirm a guess.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PierError } from './pier-error.js';

export interface SecretBox {
  /** The current key's id (stored beside each value). */
  keyId: string;
  seal(value: string): { ciphertext: string; digest: string; keyId: string };
  open(ciphertext: string, keyId: string | null): string;
}

const IV = 12;
const TAG = 16;

/** A box over KEYS (the first encrypts; any decrypts what it encrypted). */
export function createSecretBox(keys: Buffer[]): SecretBox {
  const current = keys[0];
  if (!current || keys.some((k) => k.length !== 32)) throw new Error('a secret key is 32 bytes');
  const byId = new Map(keys.map((k) => [idOf(k), k]));
  const digestKey = createHash('sha256').update('pier secret digest\0').update(current).digest();
  const keyId = idOf(current);
  return {
    keyId,
    seal(value) {
      const iv = randomBytes(IV);
      const cipher = createCipheriv('aes-256-gcm', current, iv);
      const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
      return {
        ciphertext: Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64'),
        digest: `hmac-sha256:${createHmac('sha256', digestKey).update(value, 'utf8').digest('hex').slice(0, 16)}`,
        keyId,
      };
    },
    open(ciphertext, id) {
      const key = byId.get(id ?? keyId);
      if (!key) {
        throw new PierError('E_SECRET_KEY_MISSING', `a secret was encrypted with key ${id}, which this server does not have`, {
          status: 500,
          hint: 'put the old key file back in the data folder as secrets.key.old-<anything> (docs/secrets.md: rotation)',
        });
      }
      const raw = Buffer.from(ciphertext, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV));
      decipher.setAuthTag(raw.subarray(IV, IV + TAG));
      return Buffer.concat([decipher.update(raw.subarray(IV + TAG)), decipher.final()]).toString('utf8');
    },
  };
}

/** The data folder's keys: `secrets.key` (made on first use) first, then `secrets.key.old-*`. */
export function loadSecretBox(dataDir: string): SecretBox {
  const file = join(dataDir, 'secrets.key');
  let current: Buffer;
  try {
    current = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    current = randomBytes(32);
    writeFileSync(file, `${current.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  }
  const old = readdirSync(dataDir)
    .filter((f) => f.startsWith('secrets.key.old-'))
    .sort()
    .map((f) => Buffer.from(readFileSync(join(dataDir, f), 'utf8').trim(), 'hex'));
  return createSecretBox([current, ...old]);
}

function idOf(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}
