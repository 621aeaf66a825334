// What a migrated test database template depends on: every migration of db/migrations and the
// journal. A changed or added migration gives a new hash, and so a new template.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MIGRATIONS = fileURLToPath(new URL('../../../db/migrations', import.meta.url));

/** 16 hex digits of a SHA-256 over the migrations' names and contents. */
export async function migrationsHash(): Promise<string> {
  const hash = createHash('sha256');
  const files = [...(await readdir(MIGRATIONS)).filter((f) => f.endsWith('.sql')).sort(), 'meta/_journal.json'];
  for (const f of files) hash.update(f).update('\0').update(await readFile(join(MIGRATIONS, f))).update('\0');
  return hash.digest('hex').slice(0, 16);
}
