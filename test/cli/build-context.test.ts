// Packing a build context: what .dockerignore and [build] ignore leave out, exceptions inside a
// left-out folder, the Dockerfile and .dockerignore always sent, and a missing folder refused.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test, type TestContext } from 'node:test';
import tar from 'tar-fs';
import { packContext } from '../../cli/build-context.js';
import { CliError } from '../../cli/cli-error.js';
import { makeContext } from '../support/build-context.js';

async function packed(t: TestContext, dir: string, ignore: string[] = [], dockerfile = 'Dockerfile'): Promise<{ files: string[]; bytes: number }> {
  const out = await mkdtemp(join(tmpdir(), 'pier-unpacked-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const context = await packContext(dir, { dockerfile, ignore });
  await pipeline(context.stream, tar.extract(out));
  const files = (await readdir(out, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(out.length + 1))
    .sort();
  return { files, bytes: context.bytes() };
}

test('the context leaves out what .dockerignore and [build] ignore name, and counts what it sends', async (t) => {
  const dir = await makeContext(t, {
    Dockerfile: 'FROM scratch\n',
    '.dockerignore': '**/*.log\nnode_modules\n# a comment\n',
    'src/app.js': 'x',
    'src/debug.log': 'x',
    'node_modules/dep/index.js': 'x',
    'notes.txt': 'x',
  });
  const { files, bytes } = await packed(t, dir, ['notes.txt']);
  assert.deepEqual(files, ['.dockerignore', 'Dockerfile', 'src/app.js']);
  assert.ok(bytes > 0 && bytes % 512 === 0, `a tar stream: ${bytes}`);
});

test('an exception keeps a file inside a left-out folder; the Dockerfile and .dockerignore always go', async (t) => {
  const dir = await makeContext(t, {
    'build/Dockerfile': 'FROM scratch\n',
    '.dockerignore': 'build\n.dockerignore\nassets\n!assets/keep.txt\n',
    'assets/keep.txt': 'x',
    'assets/drop.txt': 'x',
  });
  const { files } = await packed(t, dir, [], 'build/Dockerfile');
  assert.deepEqual(files, ['.dockerignore', 'assets/keep.txt', 'build/Dockerfile']);
});

test('a Dockerfile inside a left-out folder still goes, alone', async (t) => {
  const dir = await makeContext(t, { 'build/Dockerfile': 'FROM scratch\n', 'build/other.txt': 'x', '.dockerignore': 'build\n', 'app.js': 'x' });
  assert.deepEqual((await packed(t, dir, [], 'build/Dockerfile')).files, ['.dockerignore', 'app.js', 'build/Dockerfile']);
});

test('a context that is not a folder is refused with E_BUILD_CONTEXT_MISSING (exit 2)', async (t) => {
  const dir = await makeContext(t, {});
  await assert.rejects(packContext(join(dir, 'nope'), { dockerfile: 'Dockerfile', ignore: [] }), (err: unknown) => err instanceof CliError && err.code === 'E_BUILD_CONTEXT_MISSING' && err.exitCode === 2);
});
