// The embedded database's first start (initdb) in a child process. PGlite creates a new data
// folder with a second WebAssembly instance and an unpacked file bundle: about 650 MB at its
// peak, which the server process kept resident afterwards (garbage to V8, but not returned to
// the system) and idled at ~830 MB instead of ~170 MB. A child process gives all of it back
// when it exits. Later starts find PG_VERSION and skip this.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const INIT = `const { PGlite } = await import(process.argv[1]);
const db = new PGlite(process.argv[2]);
await db.waitReady;
await db.close();`;

/** Creates the PGlite data folder `dataDir` in a child process unless it holds a database already. */
export async function initPgliteDataDir(dataDir: string): Promise<void> {
  if (await access(join(dataDir, 'PG_VERSION')).then(() => true, () => false)) return;
  try {
    await run(process.execPath, ['--input-type=module', '-e', INIT, import.meta.resolve('@electric-sql/pglite'), dataDir], { timeout: 300_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`creating the embedded database in ${dataDir} failed: ${(e.stderr || e.message).trim().split('\n').slice(-3).join(' ')}`, { cause: err });
  }
}
