// Encrypts certificates' private keys at rest (AES-256-GCM). The 32-byte key lives in the server's
// data folder (`tls-keys.secret`, mode 0600, made on first start), never in the database, so a
// database dump or backup alone does not reveal private keys; back the file up with the data
// folder (docs/tls.md). Stored form: `v1:<iv>:<tag>:<ciphertext>`, base64url parts.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PierError } from '../pier-error.js';

export const KEY_VAULT_FILE = 'tls-keys.secret';

export interface KeyVault {
  seal(plain: string): string;
  open(sealed: string): string;
}

export function createKeyVault(key: Buffer): KeyVault {
  if (key.length !== 32) throw new Error('the key vault needs a 32-byte key');
  return {
    seal(plain) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join(':');
    },
    open(sealed) {
      const [v, iv, tag, body] = sealed.split(':');
      if (v !== 'v1' || iv === undefined || tag === undefined || body === undefined) throw keyUnreadable('unknown format');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch (err) {
        throw keyUnreadable((err as Error).message);
      }
    },
  };
}

/** The vault of a data folder: its key file is read, or made (0600) when missing. */
export async function loadKeyVault(dataDir: string): Promise<KeyVault> {
  const file = join(dataDir, KEY_VAULT_FILE);
  let key: Buffer;
  try {
    key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    key = randomBytes(32);
    // The server may load the vault before anything else made its data folder.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // 'wx': two servers starting on one folder must not overwrite each other's key.
    await writeFile(file, key.toString('base64url') + '\n', { mode: 0o600, flag: 'wx' }).catch(async (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
      key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64url');
    });
  }
  if (key.length !== 32) throw new PierError('E_KEY_VAULT', `${file} does not hold a 32-byte key`, { hint: 'restore the file from the backup of the data folder' });
  return createKeyVault(key);
}

function keyUnreadable(why: string): PierError {
  return new PierError('E_KEY_VAULT', `a stored private key cannot be decrypted (${why})`, {
    hint: `the data folder's ${KEY_VAULT_FILE} is not the one the key was stored with: restore it, or add the certificate again`,
  });
}
