// The external registry's basic-auth credentials. Given once (`--registry-user` and the password
// in PIER_REGISTRY_PASSWORD or a file; never on the command line), Pier keeps them in its data
// folder (registry-credentials.json, mode 0600, like its tokens) and uses the kept ones on later
// starts against the same registry. The password is a Secret: it prints as [hidden] in logs,
// JSON and inspection, so no log line or error can carry it by accident.
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryCredentials } from './registry.js';

export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[hidden]';
  }
  toJSON(): string {
    return '[hidden]';
  }
  [inspect.custom](): string {
    return '[hidden]';
  }
}

export const CREDENTIALS_FILE = 'registry-credentials.json';

interface Stored {
  registry: string;
  username: string;
  password: string;
}

/**
 * The credentials to use for the registry at ORIGIN: the given ones (then kept in DATA_DIR), or
 * those kept for that same registry, or none.
 */
export async function registryCredentials(dataDir: string, origin: string, given: { username: string; password: Secret } | undefined): Promise<RegistryCredentials | null> {
  const file = join(dataDir, CREDENTIALS_FILE);
  if (given) {
    const stored: Stored = { registry: origin, username: given.username, password: given.password.reveal() };
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${JSON.stringify(stored)}\n`, { mode: 0o600 });
    await rename(tmp, file);
    return { username: given.username, password: given.password.reveal() };
  }
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  try {
    const kept = JSON.parse(text) as Partial<Stored>;
    if (kept.registry === origin && typeof kept.username === 'string' && typeof kept.password === 'string') return { username: kept.username, password: kept.password };
  } catch {
    // A damaged file is as good as none; the next start with credentials rewrites it.
  }
  return null;
}
