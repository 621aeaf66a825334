// The resolve hook of cli/esm-resolve-shortcut.ts gives Node's own answers: every import of the
// API's module graph and of a package laid out with the awkward cases (a symlinked file, a missing
// one, a folder, a nested "type": "commonjs" folder, a query string) resolves, loads or fails the
// same with the hook as without. Each run is a child process, so the test runner keeps no hook.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const HOOK = new URL('../../cli/esm-resolve-shortcut.js', import.meta.url).href;
const API_SERVER = new URL('../../api/server.js', import.meta.url).href;
const hasHooks = typeof (module as unknown as { registerHooks?: unknown }).registerHooks === 'function';

/** Imports `entry` in a child, with or without the hook, and returns every resolution it saw. */
const RECORDER = `
import module from 'node:module';
import { writeFileSync } from 'node:fs';
const [entry, mode, out] = process.argv.slice(2);
const installed = mode === 'on' ? (await import(${JSON.stringify(HOOK)})).installEsmResolveShortcut() : false;
const seen = {};
// Registered last, so it runs first and sees what the hook (or Node) finally answers.
module.registerHooks({ resolve(specifier, context, next) {
  const key = specifier + ' <- ' + context.parentURL + ' [' + (context.conditions ?? []).join(',') + ']';
  try { const r = next(specifier, context); seen[key] = r.url + ' ' + r.format; return r; }
  catch (err) { seen[key] = 'error ' + err.code; throw err; }
} });
const result = await import(entry);
writeFileSync(out, JSON.stringify({ installed, seen, outcomes: result.outcomes ?? null }));
process.exit(0);
`;

async function record(dir: string, entry: string, mode: 'on' | 'off'): Promise<{ installed: boolean; seen: Record<string, string>; outcomes: unknown }> {
  const script = join(dir, 'record.mjs');
  await writeFile(script, RECORDER);
  const out = join(dir, `seen-${mode}.json`);
  await exec(process.execPath, [script, entry, mode, out], { timeout: 60_000 });
  return JSON.parse(await readFile(out, 'utf8'));
}

test('without module.registerHooks (Node 20) the hook is not installed', { skip: hasHooks && 'this Node has module.registerHooks' }, async () => {
  const { stdout } = await exec(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(HOOK)}); process.stdout.write(String(m.installEsmResolveShortcut()))`]);
  assert.equal(stdout, 'false');
});

test('a package with awkward cases resolves, loads and fails the same with the hook', { skip: !hasHooks && 'needs module.registerHooks (Node 22.15+)' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-esm-hook-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pkg = join(dir, 'node_modules', 'pkg');
  await mkdir(join(pkg, 'lib', 'folder'), { recursive: true });
  await mkdir(join(pkg, 'cjs'), { recursive: true });
  await mkdir(join(dir, 'elsewhere'), { recursive: true });
  await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'pkg', type: 'module', exports: { '.': './index.js' } }));
  await writeFile(join(pkg, 'lib', 'a.js'), 'export const kind = "esm";\n');
  await writeFile(join(pkg, 'lib', 'folder', 'index.js'), 'export const kind = "folder";\n');
  await writeFile(join(pkg, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }));
  await writeFile(join(pkg, 'cjs', 'b.js'), 'exports.kind = "cjs";\n');
  await writeFile(join(dir, 'elsewhere', 'real.js'), 'export const kind = "linked";\n');
  await writeFile(join(dir, 'elsewhere', 'package.json'), JSON.stringify({ type: 'module' }));
  await symlink(join(dir, 'elsewhere', 'real.js'), join(pkg, 'lib', 'linked.js'));
  const cases = ['./lib/a.js', './lib/../lib/a.js', './lib/linked.js', './lib/missing.js', './lib/folder', './lib/folder.js', './cjs/b.js', './lib/a.js?x=1', './lib%2Fa.js'];
  await writeFile(
    join(pkg, 'index.js'),
    `export const outcomes = {};\nfor (const c of ${JSON.stringify(cases)}) {\n  try { const m = await import(c); outcomes[c] = String(m.kind ?? m.default?.kind); }\n  catch (err) { outcomes[c] = err.code; }\n}\n`,
  );
  await writeFile(join(dir, 'main.mjs'), 'export { outcomes } from "pkg";\n');
  const entry = pathToFileURL(join(dir, 'main.mjs')).href;

  const off = await record(dir, entry, 'off');
  const on = await record(dir, entry, 'on');
  assert.equal(on.installed, true);
  assert.deepEqual(on.outcomes, off.outcomes);
  assert.deepEqual(on.seen, off.seen);
  // And Node's answers are the interesting ones, so the comparison covers them.
  assert.deepEqual(off.outcomes, {
    './lib/a.js': 'esm',
    './lib/../lib/a.js': 'esm',
    './lib/linked.js': 'linked',
    './lib/missing.js': 'ERR_MODULE_NOT_FOUND',
    './lib/folder': 'ERR_UNSUPPORTED_DIR_IMPORT',
    './lib/folder.js': 'ERR_MODULE_NOT_FOUND',
    './cjs/b.js': 'cjs',
    './lib/a.js?x=1': 'esm',
    './lib%2Fa.js': 'ERR_INVALID_MODULE_SPECIFIER',
  });
  const linked = Object.entries(off.seen).find(([k]) => k.startsWith('./lib/linked.js '));
  assert.match(linked?.[1] ?? '', /\/elsewhere\/real\.js module$/);
});

test("the API's module graph resolves the same with the hook", { skip: !hasHooks && 'needs module.registerHooks (Node 22.15+)' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-esm-hook-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const off = await record(dir, API_SERVER, 'off');
  const on = await record(dir, API_SERVER, 'on');
  assert.equal(on.installed, true);
  assert.ok(Object.keys(off.seen).some((k) => k.includes('/node_modules/drizzle-orm/')), 'the graph includes drizzle-orm');
  assert.deepEqual(on.seen, off.seen);
});
