// First start: make the default org and an admin token, and leave the token where the local
// CLI finds it (<data dir>/admin-token and the CLI config file, both mode 0600), so `pier`
// commands on this machine work with no set-up.
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
}

export interface BootstrapResult {
  orgId: string;
  tokenFile: string;
  /** True when a new admin token was made on this start. */
  created: boolean;
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
      await writeCliConfig(options.cliConfigFile, options.apiUrl, existing);
      return { orgId: org, tokenFile, created: false };
    }
  }

  const secret = generateTokenSecret();
  await db.insert(tokens).values({ id: newId('tok'), orgId: org, name: 'admin (local)', hash: hashTokenSecret(secret), scope: 'admin' });
  await writePrivate(tokenFile, `${secret}\n`);
  await writeCliConfig(options.cliConfigFile, options.apiUrl, secret);
  return { orgId: org, tokenFile, created: true };
}

async function defaultOrg(db: Db): Promise<string> {
  await db.insert(orgs).values({ id: newId('org'), name: 'default' }).onConflictDoNothing();
  const [row] = await db.select().from(orgs).where(eq(orgs.name, 'default'));
  if (!row) throw new Error('default org missing after insert');
  return row.id;
}

/** Merges apiUrl and token into the CLI config, keeping any other settings in it. */
async function writeCliConfig(file: string, apiUrl: string, token: string): Promise<void> {
  const current = await readFile(file, 'utf8').then((s) => JSON.parse(s) as Record<string, unknown>, () => ({}));
  await writePrivate(file, `${JSON.stringify({ ...current, apiUrl, token }, null, 2)}\n`);
}

async function writePrivate(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
