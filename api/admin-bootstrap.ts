// First start: make the default org and an admin token, and leave the token where the local
// CLI finds it (<data dir>/admin-token, mode 0600). The CLI config file is written only when
// there is none yet (or it already holds this server's own token): a host's other users and
// other servers keep their CLI settings.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { and, eq, isNull } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { orgs, tokens } from '../db/schema/index.js';
import { newId } from './ids.js';
import { generateTokenSecret, hashTokenSecret } from './token-secret.js';

export interface BootstrapOptions {
  db: Db;
  dataDir: string;
  cliConfigFile: string;
  apiUrl: string;
  /** The API certificate's fingerprint when it serves HTTPS: the CLI pins it. */
  fingerprint?: string | undefined;
}

/**
 * What happened to the CLI config file: `written` (there was none), `updated` (it held this
 * server's admin token; only its apiUrl changed), `kept` (it holds other settings: left as is).
 */
export type CliConfigOutcome = 'written' | 'updated' | 'unchanged' | 'kept';

export interface BootstrapResult {
  orgId: string;
  tokenFile: string;
  /** True when a new admin token was made on this start. */
  created: boolean;
  cliConfig: CliConfigOutcome;
}

export async function bootstrapAdmin(options: BootstrapOptions): Promise<BootstrapResult> {
  const { db } = options;
  const tokenFile = join(options.dataDir, 'admin-token');
  const org = await defaultOrg(db);

  // Keep the token already on disk while the database still knows it.
  const existing = await readFile(tokenFile, 'utf8').then((s) => s.trim(), () => null);
  if (existing) {
    const [row] = await db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(eq(tokens.hash, hashTokenSecret(existing)), isNull(tokens.revokedAt)));
    if (row) {
      const cliConfig = await offerCliConfig(options.cliConfigFile, options.apiUrl, existing, [existing], options.fingerprint);
      return { orgId: org, tokenFile, created: false, cliConfig };
    }
  }

  const secret = generateTokenSecret();
  await db.insert(tokens).values({ id: newId('tok'), orgId: org, name: 'admin (local)', hash: hashTokenSecret(secret), scope: 'admin' });
  await writePrivate(tokenFile, `${secret}\n`);
  // A config holding the token this file held before (now unknown to the database) is ours too.
  const cliConfig = await offerCliConfig(options.cliConfigFile, options.apiUrl, secret, existing ? [existing] : [], options.fingerprint);
  return { orgId: org, tokenFile, created: true, cliConfig };
}

async function defaultOrg(db: Db): Promise<string> {
  await db.insert(orgs).values({ id: newId('org'), name: 'default' }).onConflictDoNothing();
  const [row] = await db.select().from(orgs).where(eq(orgs.name, 'default'));
  if (!row) throw new Error('default org missing after insert');
  return row.id;
}

/**
 * Writes apiUrl and token to the CLI config when it does not exist. An existing one is changed
 * only when its token is one of `ours` (this server wrote it on an earlier start; the API may
 * now listen elsewhere); any other file is someone's own settings and is left alone.
 */
async function offerCliConfig(file: string, apiUrl: string, token: string, ours: string[], fingerprint: string | undefined): Promise<CliConfigOutcome> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return 'kept';
    await writePrivate(file, `${JSON.stringify({ apiUrl, token, ...(fingerprint ? { fingerprint } : {}) }, null, 2)}\n`);
    return 'written';
  }
  let current: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'kept';
    current = parsed as Record<string, unknown>;
  } catch {
    return 'kept';
  }
  if (typeof current.token !== 'string' || !ours.includes(current.token)) return 'kept';
  if (current.token === token && current.apiUrl === apiUrl && current.fingerprint === fingerprint) return 'unchanged';
  const { fingerprint: _old, ...rest } = current;
  await writePrivate(file, `${JSON.stringify({ ...rest, apiUrl, token, ...(fingerprint ? { fingerprint } : {}) }, null, 2)}\n`);
  return 'updated';
}

async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
