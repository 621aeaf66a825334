// What `pier server` writes is its user's alone: nothing in the data folder is open to group or
// others after a first start (the embedded database included), files an older Pier left open
// are fixed at start with a warning, and the CLI config of someone else is left as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Stats } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../support/eventually.js';
import { runPier, startPierServer } from '../support/pier-process.js';

/** lstat, or null for a file that went between readdir and lstat (the server renames its temp files into place). */
async function lstatIfThere(path: string): Promise<Stats | null> {
  return lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

/** Every path under `dir` (itself included) whose mode lets group or others in. */
async function openToOthers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (path: string): Promise<void> => {
    const st = await lstatIfThere(path);
    if (!st || st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0) found.push(`${path} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
  return found;
}

async function count(dir: string): Promise<number> {
  let n = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstatIfThere(path);
    if (!st) return;
    n++;
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
  return n;
}

test('the data folder is private after a first start, and files an older Pier left open are made private at the next', async (t) => {
  const first = await startPierServer(t);
  const data = join(first.dir, 'data');
  assert.ok((await count(data)) >= (first.databaseUrl ? 2 : 100), 'the server wrote its files');
  assert.deepEqual(await openToOthers(data), [], 'nothing readable, writable or enterable by group or others');
  await first.stop();

  // As an older Pier (no umask) left it: the folder and files open to everyone.
  await chmod(data, 0o755);
  await chmod(join(data, 'admin-token'), 0o644);
  await writeFile(join(data, 'notes.txt'), 'hand-written\n', { mode: 0o666 });
  await chmod(join(data, 'notes.txt'), 0o666);
  if (!first.databaseUrl) {
    await chmod(join(data, 'db'), 0o755);
    await chmod(join(data, 'db', 'PG_VERSION'), 0o666);
  }
  const before = (await openToOthers(data)).length;
  assert.ok(before >= 3);

  const again = await startPierServer(t, { PIER_DATA_DIR: data, XDG_CONFIG_HOME: join(first.dir, 'config') }, { databaseUrl: first.databaseUrl });
  assert.deepEqual(await openToOthers(data), []);
  await eventually(() => /warning: made/.test(again.stderr()), 'the warning', 500, 20);
  assert.match(again.stderr(), new RegExp(`warning: made ${before} files in ${data} private`));
  assert.equal(await readFile(join(data, 'notes.txt'), 'utf8'), 'hand-written\n', 'contents untouched');
  const r = await runPier(['apps', 'list'], again.env);
  assert.equal(r.code, 0, r.stderr);
});

test("pier server leaves an existing CLI config that is not its own as it was, and says how to reach it", async (t) => {
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const home = await mkdtemp(join(tmpdir(), 'pier-config-'));
  t.after(() => rm(home, { recursive: true, force: true }));
  const file = join(home, 'pier', 'config.json');
  await mkdir(join(home, 'pier'), { recursive: true });
  const theirs = `${JSON.stringify({ apiUrl: 'https://pier.example.com', token: 'pier_someone_elses' }, null, 2)}\n`;
  await writeFile(file, theirs);

  const server = await startPierServer(t, { XDG_CONFIG_HOME: home });
  assert.equal(await readFile(file, 'utf8'), theirs, 'not rewritten on a first start');
  await eventually(() => /admin token in/.test(server.stdout()), 'the start-up lines', 500, 20);
  assert.match(server.stdout(), new RegExp(`${file} holds other settings and was left as is; to use this server: PIER_API_URL=${server.apiUrl} PIER_TOKEN=\\$\\(cat .*admin-token\\)`));
  await server.stop();

  const again = await startPierServer(t, { XDG_CONFIG_HOME: home, PIER_DATA_DIR: join(server.dir, 'data') }, { databaseUrl: server.databaseUrl });
  assert.equal(await readFile(file, 'utf8'), theirs, 'nor on the next');
  const r = await runPier(['apps', 'list'], { ...again.env, PIER_API_URL: again.apiUrl, PIER_TOKEN: again.token });
  assert.equal(r.code, 0, r.stderr);
});
