// An embedded database folder as Pier's first start leaves it (PGlite's initdb, then Pier's
// migrations), made once per machine, PGlite version and set of migrations, and copied into each
// test server's data folder: initdb and the migrations cost seconds of CPU, and the e2e tests start
// dozens of servers. The server still runs its migrations on the copy (none left to apply, as at
// every later start). Migrations from an empty database stay covered: in test/db/, and by the tests
// that start Pier their own way (a whole first start).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { migrationsHash } from './migrations-hash.js';

const run = promisify(execFile);

const DATABASE_MODULE = new URL('../../db/database.js', import.meta.url).href;

/** Opens (first start: initdb, migrations) and closes the embedded database in `argv[2]`, as `pier server` does. */
const FIRST_START = `const { openDatabase } = await import(process.argv[1]);
const database = await openDatabase({ dataDir: process.argv[2] });
await database.close();`;

let made: Promise<string> | undefined;

/** What the template depends on: the PGlite version and every migration (a changed one makes a new template). */
async function templateKey(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string };
  return `${pkg.version}-${await migrationsHash()}`;
}

async function template(): Promise<string> {
  const final = join(tmpdir(), `pier-test-pglite-${await templateKey()}`);
  if (await stat(join(final, 'PG_VERSION')).then(() => true, () => false)) return final;
  const work = await mkdtemp(join(tmpdir(), 'pier-test-pglite-making-'));
  try {
    // In a child process: PGlite's first start peaks at hundreds of MB (db/pglite-first-start.ts).
    await run(process.execPath, ['--input-type=module', '-e', FIRST_START, DATABASE_MODULE, work], { timeout: 300_000 });
    // Atomic: another test process may have finished first, and then its copy is kept.
    await rename(work, final).catch(async () => rm(work, { recursive: true, force: true }));
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    const e = err as Error & { stderr?: string };
    throw new Error(`making the embedded database template failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}`, { cause: err });
  }
  return final;
}

/** Puts a migrated embedded database in `dataDir/db` unless something is there already. */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  const target = join(dataDir, 'db');
  if (await stat(target).then(() => true, () => false)) return;
  const source = await (made ??= template());
  await mkdir(dataDir, { recursive: true });
  // cp(1) rather than fs.cp: about a thousand files, which fs.cp copies at ten times the CPU.
  await run('cp', ['-R', source, target]);
}
