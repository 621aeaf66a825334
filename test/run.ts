// The test command (`npm test`): every test/**/*.test.ts, compiled, through node:test's run() with
// two files at a time (run() keeps the order it is given, where `node --test` sorts its files).
// With PIER_TEST_DATABASE_ONLY=1 (CI's PostgreSQL pass) it runs only the files whose outcome can
// depend on the database: those whose imports reach db/database.ts, less those marked
// `// test-pass: once` (their subject is not the database: a PostgreSQL of their own, an installed
// package). With PIER_TEST_ONLY=test/db/,test/e2e/deploy.test.ts it runs only the files under those
// paths. The files that take 50 s or more start first (LONG_FIRST), so that the two-file
// schedule does not end with a long file running alone.
import { setMaxListeners } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DATABASE_MODULE = join(ROOT, 'dist/db/database.js');
export const ONCE_MARKER = '// test-pass: once';

/**
 * The longest a single test may take: the slowest take under 3 minutes in CI (the swarm e2e), so
 * 10 minutes is only ever reached by a hang, which then fails that test and the run goes on.
 */
export const TEST_TIMEOUT_MS = 10 * 60_000;

/**
 * The longest a test file's process may live. TEST_TIMEOUT_MS fails a test that hangs, but on
 * Node 24 and 26 the runner leaves the file's process alone after that, and a process whose event
 * loop is blocked never even times out: truthful-health's held CI's PostgreSQL pass for 58 min
 * until CI's own limit ended it. The slowest file takes under 4 minutes in CI; past the 10 minutes
 * a test may take, with a margin for its hooks, the file is ended. (run()'s `forceExit` would end
 * it sooner, but a process that exits as its last test ends can lose that test's report on the
 * way to the runner: a file's last test went missing from CI's log with it, so it is not used.)
 */
export const FILE_LIMIT_MS = 12 * 60_000;

export interface ProcessEntry {
  pid: number;
  ppid: number;
  /** R, S, D, Z…: a killed process whose parent has not reaped it yet stays in the table as Z. */
  state: string;
  cmdline: string;
}

/** The running processes, from /proc (empty where there is none). */
export async function processTable(): Promise<ProcessEntry[]> {
  const names = await readdir('/proc').catch(() => [] as string[]);
  const table: ProcessEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses, so read after the last ')'.
      const [state = '?', ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0').filter(Boolean).join(' ');
      table.push({ pid: Number(name), ppid: Number(ppid), state, cmdline });
    } catch {
      // It ended while being read.
    }
  }
  return table;
}

/** The pids of every process below `root` in `table`, children before their own children. */
export function descendants(table: ProcessEntry[], root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.shift() as number;
    for (const p of table) {
      if (p.ppid === parent && !out.includes(p.pid)) {
        out.push(p.pid);
        queue.push(p.pid);
      }
    }
  }
  return out;
}

/**
 * Ends, with SIGKILL, every test file process (a child of `parent` whose command line names a
 * compiled test file) that has been seen for longer than `limitMs`, with every process below it:
 * the `pier server`s, agents and tools it started, which would otherwise outlive it. Returns a
 * function that stops the watch. `say` hears what was ended, so the log says which file hung.
 */
export function watchTestFiles(parent: number, limitMs: number, say: (line: string) => void, everyMs = 15_000): () => void {
  const seen = new Map<number, number>();
  const check = async () => {
    const table = await processTable();
    const now = Date.now();
    const alive = new Set<number>();
    for (const p of table) {
      if (p.ppid !== parent || p.state === 'Z' || !/\.test\.js\b/.test(p.cmdline)) continue;
      alive.add(p.pid);
      const since = seen.get(p.pid) ?? now;
      seen.set(p.pid, since);
      if (now - since < limitMs) continue;
      const below = descendants(table, p.pid);
      const file = /\S+\.test\.js/.exec(p.cmdline)?.[0] ?? p.cmdline;
      say(`test: ${file} has run for ${Math.round((now - since) / 60_000)} min, past the ${Math.round(limitMs / 60_000)} min a file may take; ending it (pid ${p.pid}) and what it started:${below.map((pid) => `\n  ${pid} ${table.find((q) => q.pid === pid)?.cmdline.slice(0, 200) ?? ''}`).join('')}`);
      for (const pid of [...below].reverse()) killQuietly(pid);
      killQuietly(p.pid);
      seen.delete(p.pid);
    }
    for (const pid of seen.keys()) if (!alive.has(pid)) seen.delete(pid);
  };
  const timer = setInterval(() => void check().catch((err: unknown) => say(`test: the file watch failed: ${String(err)}`)), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * The slowest files in CI (50 s or more each in a pass of .ci/run's log, slowest first, the files
 * sped up since by the times they took alone). Started first, they overlap the many short files
 * instead of ending a pass alone: on the last pass's subset that cuts about a minute (424 s → 373 s,
 * replayed from the log). A file missing here starts in its place.
 */
export const LONG_FIRST = [
  'test/e2e/swarm.test.ts',
  'test/e2e/private-network.test.ts',
  'test/e2e/postgres-restart.test.ts',
  'test/e2e/cli-contract.test.ts',
  'test/e2e/volumes-move.test.ts',
  'test/e2e/swarm-private.test.ts',
  'test/e2e/package-install.test.ts',
  'test/e2e/server-restarts.test.ts',
  'test/e2e/preview-environments.test.ts',
  'test/api/runtime/swarm-services.test.ts',
  'test/e2e/deploy-from-dockerfile.test.ts',
  'test/e2e/volumes.test.ts',
  'test/e2e/swarm-volumes.test.ts',
  'test/e2e/volumes-move-several.test.ts',
  'test/e2e/volumes-gib.test.ts',
  'test/e2e/rollout.test.ts',
  'test/e2e/volumes-postgres.test.ts',
  'test/e2e/swarm-two-servers.test.ts',
  'test/e2e/docker-outage.test.ts',
  'test/e2e/volumes-lifecycle.test.ts',
  'test/e2e/status-output.test.ts',
  'test/e2e/truthful-health.test.ts',
  'test/e2e/two-servers.test.ts',
  'test/e2e/prometheus.test.ts',
  'test/e2e/addresses-netns.test.ts',
  'test/e2e/acme-pebble.test.ts',
  'test/e2e/cli-tokens.test.ts',
  'test/e2e/port-forward.test.ts',
  'test/e2e/deploy.test.ts',
];

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

/**
 * How many test files run at once: PIER_TEST_CONCURRENCY when it is a whole number from 1 to 16,
 * else 2. Each file has its own ports, data folders, databases and labelled containers, so more is
 * safe on a bigger machine; on this 2-core one the suite is CPU-bound at 2 already (a full pass at
 * 3 kept both cores 98 % busy, so there is little to gain, and pushed the PostgreSQL-restart test's 10 s
 * recovery bound over in one round of 20).
 */
export function testConcurrency(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_CONCURRENCY;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 16) {
    console.error(`test: PIER_TEST_CONCURRENCY=${value} is not a whole number from 1 to 16; running ${DEFAULT_CONCURRENCY} files at a time`);
    return DEFAULT_CONCURRENCY;
  }
  return n;
}

export const DEFAULT_CONCURRENCY = 2;

/** `files` (compiled paths) in the order they start: those in LONG_FIRST first, in its order, then the rest as given. */
export function startOrder(files: string[], long: string[] = LONG_FIRST): string[] {
  const rank = new Map(long.map((source, i) => [`dist/${source.replace(/\.ts$/, '.js')}`, i]));
  const first = files.filter((f) => rank.has(f)).sort((a, b) => (rank.get(a) as number) - (rank.get(b) as number));
  return [...first, ...files.filter((f) => !rank.has(f))];
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
  // The test files run where `node --test` ran them: in the repository's root.
  process.chdir(ROOT);
  const stop = new AbortController();
  // Each test file's process listens on it (a MaxListenersExceededWarning past ten otherwise).
  setMaxListeners(0, stop.signal);
  // Stopping the command stops the run (its test processes included), rather than leaving it behind.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => stop.abort());
  let failed = false;
  // Each test fails after TEST_TIMEOUT_MS instead of holding the run (and CI) forever on a hang;
  // the watch ends a file that outlives FILE_LIMIT_MS (on Node 24 and 26 a file whose test timed
  // out stays otherwise, held by what the test left open).
  const unwatch = watchTestFiles(process.pid, FILE_LIMIT_MS, (line) => console.error(line));
  const stream = run({ files: startOrder(files).map((f) => join(ROOT, f)), concurrency: testConcurrency(process.env.PIER_TEST_CONCURRENCY), signal: stop.signal, timeout: TEST_TIMEOUT_MS });
  // As `node --test` exits: 1 when a test (or a whole file) failed, a todo's failure aside.
  stream.on('test:fail', (event) => {
    if (!event.todo) failed = true;
  });
  stream.on('end', () => {
    unwatch();
    process.exitCode = failed || stop.signal.aborted ? 1 : 0;
  });
  stream.compose(new spec()).pipe(process.stdout);
}
