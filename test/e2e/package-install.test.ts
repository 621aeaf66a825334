// Pier outside its checkout: the tarball `npm pack` makes installs into a scratch prefix with
// `npm install -g --prefix`, and the `pier` it puts on PATH runs (`--version`, and a server that
// finds its migrations and answers /healthz). And `npm start` stopped with SIGTERM stops the
// server too, not only npm's shell.
// test-pass: once — its subject is the installed package, not the database behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createTestDbUrl } from '../support/test-db.js';

const exec = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const { version } = createRequire(import.meta.url)('../../../package.json') as { version: string };

/** Waits (bounded) for `pattern` in the child's stdout; returns its first group. */
function waitFor(child: ChildProcess, output: () => string, pattern: RegExp, what: string, timeoutMs = 90_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no match for ${pattern} in ${timeoutMs} ms\n${output().slice(-3000)}`)), timeoutMs);
    const check = (): void => {
      const m = pattern.exec(output());
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}\n${output().slice(-3000)}`));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every process below `pid`, from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parents.set(Number(name), ppid);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of parents) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

function serverEnv(dir: string, databaseUrl: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PIER_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config'), PIER_LOG_LEVEL: 'info' };
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  return env;
}

test('the packed tarball installs into a scratch prefix, and its pier runs a server outside the checkout', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-pack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // dist/ is built already (npm test builds it); --ignore-scripts skips a second build.
  const { stdout: packed } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  const [info] = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
  assert.ok(info);
  const paths = info.files.map((f) => f.path);
  assert.ok(paths.includes('dist/cli/main.js'));
  assert.ok(paths.includes('db/migrations/meta/_journal.json'));
  assert.ok(paths.includes('docs/api.md'));
  assert.deepEqual(paths.filter((p) => p.startsWith('dist/test/') || p.startsWith('dist/bench/') || p.endsWith('.map') || p.endsWith('.tsbuildinfo')), [], 'no tests, benchmarks, source maps or tsc build info');

  const prefix = join(dir, 'prefix');
  await exec('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', join(dir, info.filename)], { cwd: dir, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
  const pier = join(prefix, 'bin', 'pier');
  const installed = join(prefix, 'lib', 'node_modules', 'pier');
  await access(join(installed, 'docs', 'manifest.md'));
  await access(join(installed, 'db', 'migrations', '0000_init.sql'));

  const { stdout: shown } = await exec(pier, ['--version'], { cwd: dir });
  assert.equal(shown.trim(), version);

  // From a folder that is not the checkout, with PATH holding only the prefix's bin and node's.
  const env = serverEnv(dir, await createTestDbUrl(t));
  env.PATH = `${join(prefix, 'bin')}:${join(process.execPath, '..')}`;
  const child = spawn('pier', ['server', '--api-listen', '127.0.0.1:0'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const apiUrl = await waitFor(child, () => out, /API on (http:\/\/\S+)/, 'the installed pier server');
  const res = await fetch(`${apiUrl}/healthz`);
  assert.equal(res.status, 200, out.slice(-3000));
  const token = (await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim();
  const apps = await fetch(`${apiUrl}/v1/apps`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(apps.status, 200, 'migrations ran: the tables are there');
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
});

test('npm start stopped with SIGTERM stops the server with it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-npm-start-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const npm = spawn('npm', ['start', '--', '--api-listen', '127.0.0.1:0'], { cwd: ROOT, env: serverEnv(dir, await createTestDbUrl(t)), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  npm.stdout.on('data', (b: Buffer) => (out += b.toString()));
  npm.stderr.on('data', (b: Buffer) => (out += b.toString()));
  let below: number[] = [];
  t.after(() => {
    // Whatever survived (the defect this guards against) is ended by its PID.
    for (const pid of [npm.pid as number, ...below]) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });
  const apiUrl = await waitFor(npm, () => out, /API on (http:\/\/\S+)/, 'npm start');
  below = await descendants(npm.pid as number);
  assert.ok(below.length > 0, 'npm started the server');

  npm.kill('SIGTERM');
  await new Promise((resolve) => npm.once('exit', resolve));
  for (let i = 0; i < 100 && below.some(alive); i++) await delay(100);
  assert.deepEqual(below.filter(alive), [], `still running after npm stopped:\n${out.slice(-2000)}`);
  await assert.rejects(fetch(`${apiUrl}/healthz`), 'nothing answers on the API address');
});
