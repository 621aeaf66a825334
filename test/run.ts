// The test command (`npm test`): every test/**/*.test.ts, compiled, through `node --test` with two
// files at a time. With PIER_TEST_DATABASE_ONLY=1 (CI's PostgreSQL pass) it runs only the files
// whose outcome can depend on the database: those whose imports reach db/database.ts, less those
// marked `// test-pass: once` (their subject is not the database: a PostgreSQL of their own, an
// installed package). With PIER_TEST_ONLY=test/db/,test/e2e/deploy.test.ts it runs only the files
// under those paths.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DATABASE_MODULE = join(ROOT, 'dist/db/database.js');
export const ONCE_MARKER = '// test-pass: once';

/** Test sources under `dir`, sorted, as paths relative to the repository root. */
export function testSources(root: string, dir = 'test'): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...testSources(root, path));
    else if (entry.name.endsWith('.test.ts')) out.push(path);
  }
  return out.sort();
}

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

/** Whether the compiled module at `file` imports `target`, directly or through other local modules. */
export function reaches(file: string, target: string, seen = new Set<string>()): boolean {
  if (file === target) return true;
  if (seen.has(file) || !existsSync(file)) return false;
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(IMPORT)) {
    if (reaches(resolve(dirname(file), m[1] as string), target, seen)) return true;
  }
  return false;
}

/**
 * The compiled test files to run, and how many were left to the other passes. `only` (from
 * PIER_TEST_ONLY, comma-separated) keeps the sources whose path starts with one of its entries.
 */
export function selectTestFiles(root: string, databaseOnly: boolean, only: string[] = []): { files: string[]; skipped: string[] } {
  const files: string[] = [];
  const skipped: string[] = [];
  const database = join(root, 'dist/db/database.js');
  for (const source of testSources(root)) {
    const compiled = `dist/${source.replace(/\.ts$/, '.js')}`;
    const listed = only.length === 0 || only.some((prefix) => source.startsWith(prefix));
    const keep = listed && (!databaseOnly || (reaches(join(root, compiled), database) && !readFileSync(join(root, source), 'utf8').includes(ONCE_MARKER)));
    (keep ? files : skipped).push(compiled);
  }
  return { files, skipped };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const databaseOnly = process.env.PIER_TEST_DATABASE_ONLY === '1';
  const only = (process.env.PIER_TEST_ONLY ?? '').split(',').map((p) => p.trim()).filter(Boolean);
  const { files, skipped } = selectTestFiles(ROOT, databaseOnly, only);
  if (only.length > 0) {
    if (files.length === 0) {
      console.error(`test: PIER_TEST_ONLY=${only.join(',')} names no test file (give paths such as test/db/ or test/e2e/deploy.test.ts)`);
      process.exit(2);
    }
    console.log(`test: ${files.length} files under ${only.join(', ')} (PIER_TEST_ONLY)`);
  } else if (databaseOnly) {
    console.log(`test: ${files.length} files depend on the database; ${skipped.length} others run on the PGlite passes only (${relative(ROOT, DATABASE_MODULE)} not imported, or marked "${ONCE_MARKER}")`);
  }
  const child = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { cwd: ROOT, stdio: 'inherit' });
  // Stopping the command stops the run, rather than leaving it behind.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
