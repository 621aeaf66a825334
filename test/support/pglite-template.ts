// An initialised embedded database folder (PGlite's initdb, before Pier's migrations), made once
// per machine and PGlite version and copied into each test server's data folder: initdb costs
// seconds, and the e2e tests start dozens of servers. The server still migrates its copy itself.
// First starts from an empty folder stay covered by the tests that start Pier their own way.
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initPgliteDataDir } from '../../db/pglite-first-start.js';

let made: Promise<string> | undefined;

async function template(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string };
  const final = join(tmpdir(), `pier-test-pglite-${pkg.version}`);
  if (await stat(join(final, 'PG_VERSION')).then(() => true, () => false)) return final;
  const work = await mkdtemp(join(tmpdir(), 'pier-test-pglite-making-'));
  try {
    await initPgliteDataDir(work);
    // Atomic: another test process may have finished first, and then its copy is kept.
    await rename(work, final).catch(async () => rm(work, { recursive: true, force: true }));
  } catch (err) {
    await rm(work, { recursive: true, force: true });
    throw err;
  }
  return final;
}

/** Puts an initialised embedded database in `dataDir/db` unless something is there already. */
export async function seedPgliteDataDir(dataDir: string): Promise<void> {
  const target = join(dataDir, 'db');
  if (await stat(target).then(() => true, () => false)) return;
  const source = await (made ??= template());
  await mkdir(dataDir, { recursive: true });
  await cp(source, target, { recursive: true });
}
