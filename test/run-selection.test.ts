// Which test files CI's PostgreSQL pass runs: those whose compiled imports reach db/database.js
// (directly, through support modules, or by a dynamic import), less those marked to run once; and
// the order they start in (the long ones first); and the watch that ends a test file's process
// (with what it started) once it outlives the limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { DEFAULT_CONCURRENCY, LONG_FIRST, ONCE_MARKER, descendants, processTable, selectTestFiles, startOrder, testConcurrency, testSources, watchTestFiles } from './run.js';

async function put(root: string, path: string, text: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), text);
}

test('the PostgreSQL pass keeps the files that reach the database module, unless marked once', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'pier-run-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await put(root, 'dist/db/database.js', 'export const x = 1;\n');
  await put(root, 'dist/test/support/db.js', "import { x } from '../../db/database.js';\n");
  await put(root, 'dist/test/support/cycle.js', "import './cycle.js';\nimport './plain.js';\n");
  await put(root, 'dist/test/support/plain.js', 'export const y = 2;\n');
  const files: Record<string, string> = {
    'direct.test': "import { x } from '../db/database.js';\n",
    'through.test': "import { open } from './support/db.js';\n",
    'dynamic.test': "const m = await import('./support/db.js');\n",
    'plain.test': "import './support/cycle.js';\nimport { test } from 'node:test';\n",
    'sub/once.test': "import '../support/db.js';\n",
  };
  for (const [name, js] of Object.entries(files)) {
    await put(root, `dist/test/${name}.js`, js);
    await put(root, `test/${name}.ts`, name.endsWith('once.test') ? `${ONCE_MARKER} — its own database.\n` : '// a test\n');
  }
  await put(root, 'test/support/db.ts', '// not a test file\n');

  const all = selectTestFiles(root, false);
  assert.deepEqual(all.files, ['dist/test/direct.test.js', 'dist/test/dynamic.test.js', 'dist/test/plain.test.js', 'dist/test/sub/once.test.js', 'dist/test/through.test.js']);
  assert.deepEqual(all.skipped, []);

  const pg = selectTestFiles(root, true);
  assert.deepEqual(pg.files, ['dist/test/direct.test.js', 'dist/test/dynamic.test.js', 'dist/test/through.test.js']);
  assert.deepEqual(pg.skipped, ['dist/test/plain.test.js', 'dist/test/sub/once.test.js']);

  // PIER_TEST_ONLY: a folder prefix and a file, nothing else.
  const only = selectTestFiles(root, false, ['test/sub/', 'test/plain.test.ts']);
  assert.deepEqual(only.files, ['dist/test/plain.test.js', 'dist/test/sub/once.test.js']);
  assert.equal(only.skipped.length, 3);
});

test('the long files start first, slowest first; the others keep their order; a listed file that is not selected is not added', () => {
  const files = ['dist/test/a.test.js', 'dist/test/e2e/long.test.js', 'dist/test/b.test.js', 'dist/test/e2e/longest.test.js', 'dist/test/c.test.js'];
  const long = ['test/e2e/longest.test.ts', 'test/e2e/gone.test.ts', 'test/e2e/long.test.ts'];
  assert.deepEqual(startOrder(files, long), ['dist/test/e2e/longest.test.js', 'dist/test/e2e/long.test.js', 'dist/test/a.test.js', 'dist/test/b.test.js', 'dist/test/c.test.js']);
  assert.deepEqual(startOrder(files, []), files);
});

test('every file in LONG_FIRST is a test source, so a renamed one is noticed', () => {
  const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
  const sources = new Set(testSources(root));
  for (const source of LONG_FIRST) assert.ok(sources.has(source), `${source} is in LONG_FIRST but is not a test file`);
});

test('PIER_TEST_CONCURRENCY: a whole number from 1 to 16, else the default with a message', (t) => {
  const errors: string[] = [];
  t.mock.method(console, 'error', (line: string) => errors.push(line));
  assert.equal(testConcurrency(undefined), DEFAULT_CONCURRENCY);
  assert.equal(testConcurrency(' '), DEFAULT_CONCURRENCY);
  assert.deepEqual(errors, []);
  assert.equal(testConcurrency('1'), 1);
  assert.equal(testConcurrency('16'), 16);
  for (const bad of ['0', '17', '2.5', 'two', '-3']) assert.equal(testConcurrency(bad), DEFAULT_CONCURRENCY);
  assert.equal(errors.length, 5);
  assert.match(String(errors[0]), /PIER_TEST_CONCURRENCY=0 is not a whole number from 1 to 16/);
});

test('descendants: every process below a root, children first, and nothing else', () => {
  const table = [
    { pid: 10, ppid: 1, state: 'S', cmdline: 'runner' },
    { pid: 11, ppid: 10, state: 'S', cmdline: 'a.test.js' },
    { pid: 12, ppid: 11, state: 'S', cmdline: 'pier server' },
    { pid: 13, ppid: 12, state: 'S', cmdline: 'pier api' },
    { pid: 14, ppid: 10, state: 'S', cmdline: 'b.test.js' },
    { pid: 15, ppid: 1, state: 'S', cmdline: 'other' },
  ];
  assert.deepEqual(descendants(table, 11), [12, 13]);
  assert.deepEqual(descendants(table, 10), [11, 14, 12, 13]);
  assert.deepEqual(descendants(table, 15), []);
});

test('a test file process past the limit is ended with the processes it started, and the log names the file', async (t) => {
  if (!(await processTable()).some((p) => p.pid === process.pid)) return t.skip('no /proc here');
  // A stand-in for a hung test file: a node whose command line names a .test.js file, holding a
  // child of its own (as a test holds a `pier server`).
  const inner = "require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); setInterval(() => {}, 1000)";
  const file = spawn(process.execPath, ['-e', inner, 'dist/test/e2e/stand-in-hang.test.js'], { stdio: 'ignore' });
  t.after(() => file.kill('SIGKILL'));
  let child: number | undefined;
  for (let i = 0; i < 100 && child === undefined; i++) {
    child = descendants(await processTable(), file.pid as number)[0];
    if (child === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(child, 'the stand-in started its child');
  const said: string[] = [];
  const exited = new Promise<NodeJS.Signals | null>((resolve) => file.once('exit', (_code, signal) => resolve(signal)));
  const unwatch = watchTestFiles(process.pid, 0, (line) => said.push(line), 50);
  t.after(unwatch);
  const signal = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running after 10 s'), 10_000))]);
  assert.equal(signal, 'SIGKILL');
  let childAlive = true;
  for (let i = 0; i < 100 && childAlive; i++) {
    childAlive = (await processTable()).some((p) => p.pid === child && p.state !== 'Z');
    if (childAlive) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(childAlive, false, 'the process the file started was ended too');
  assert.match(said.join('\n'), new RegExp(`dist/test/e2e/stand-in-hang\\.test\\.js has run for 0 min, past the 0 min a file may take; ending it \\(pid ${file.pid}\\)[^]*\\n  ${child} `));
});
