// The API off loopback, for real (needs root, skipped without): a network namespace of the test's
// own with an address in 198.18.0.0/15 on a veth; `pier server --role api` and the CLI
// run in it with `nsenter --net`. Checked: plain HTTP there (--api-tls off) is refused at start with
// E_API_TLS_REQUIRED; the first start makes a self-signed certificate (key 0600) and prints its
// fingerprint; `pier login --fingerprint` with the printed value works; a restart reuses the
// certificate (same fingerprint) and the stored pin keeps working. The embedded database is used:
// the host's PostgreSQL on 127.0.0.1 is not reachable from the namespace.
// test-pass: once — it runs on the embedded database whatever DATABASE_URL says.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { certificateFingerprint } from '../../api/tls/certificate-fingerprint.js';
import { PIER_BIN, type CliResult } from '../support/pier-process.js';
import { seedPgliteDataDir } from '../support/pglite-template.js';

const run = promisify(execFile);

test('off loopback the API serves HTTPS with a self-signed certificate made once, and refuses plain HTTP', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to make a network namespace');
  const ns = `pier-tls-${process.pid}-${randomInt(1000)}`;
  try {
    await run('ip', ['netns', 'add', ns]);
  } catch (err) {
    return t.skip(`cannot make a network namespace: ${(err as Error).message}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'pier-tls-netns-'));
  const cleanups: (() => Promise<unknown>)[] = [() => run('ip', ['netns', 'del', ns]), () => rm(dir, { recursive: true, force: true })];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });
  const address = `198.18.${randomInt(100, 250)}.1`;
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // A veth pair with both ends in the namespace: an ordinary interface, not loopback.
  await run('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'v0']);
  await run('ip', ['-n', ns, 'link', 'set', 'v1', 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'v0', 'up']);

  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), PIER_DATA_DIR: join(dir, 'data'), PIER_LOG_LEVEL: 'info' };
  delete env.DATABASE_URL;
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  await seedPgliteDataDir(join(dir, 'data'));
  const serverArgs = ['server', '--role', 'api', '--registry', 'off', '--api-listen', `${address}:0`];
  const pier = (args: string[], e: NodeJS.ProcessEnv): Promise<CliResult> =>
    new Promise((resolve) => {
      execFile('nsenter', [`--net=/run/netns/${ns}`, process.execPath, PIER_BIN, ...args], { env: e, timeout: 120_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });

  await t.test('plain HTTP off loopback is refused at start with E_API_TLS_REQUIRED', async () => {
    const r = await pier([...serverArgs, '--api-tls', 'off'], env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E_API_TLS_REQUIRED/);
  });

  const first = await startServer(ns, serverArgs, env);
  cleanups.push(first.stop);
  const cert = await readFile(join(dir, 'data', 'api-tls', 'cert.pem'), 'utf8');
  const fingerprint = certificateFingerprint(cert);
  assert.match(first.apiUrl, new RegExp(`^https://${address.replace(/\./g, '\\.')}:\\d+$`));
  assert.equal(first.fingerprint, fingerprint, 'the printed fingerprint is the stored certificate\'s');
  assert.match(first.stderr(), new RegExp(`"fingerprint":"${fingerprint.replace(/[+/]/g, '\\$&')}"[^\\n]*api serves https`), 'and it is logged');
  assert.equal((await stat(join(dir, 'data', 'api-tls', 'key.pem'))).mode & 0o777, 0o600);

  const other: NodeJS.ProcessEnv = { ...env, XDG_CONFIG_HOME: join(dir, 'other-config') };
  const token = (await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim();
  const unpinned = await pier(['apps', 'list'], { ...other, PIER_API_URL: first.apiUrl, PIER_TOKEN: token });
  assert.equal(unpinned.code, 1);
  assert.match(unpinned.stderr, /E_TLS_UNTRUSTED[\s\S]*pier login --api URL --fingerprint/);
  const login = await pier(['login', '--api', first.apiUrl, '--token', token, '--fingerprint', first.fingerprint], other);
  assert.equal(login.code, 0, login.stderr);
  assert.equal((await pier(['apps', 'list', '--json'], other)).code, 0);
  // The server's own CLI config was written with the pin too.
  assert.equal((await pier(['apps', 'list', '--json'], env)).code, 0);
  await first.stop();

  const second = await startServer(ns, serverArgs, env);
  cleanups.push(second.stop);
  assert.equal(second.fingerprint, fingerprint, 'a restart reuses the certificate');
  assert.equal(await readFile(join(dir, 'data', 'api-tls', 'cert.pem'), 'utf8'), cert);
  // The port changed (port 0): the stored pin goes with a new URL given on the command line.
  const again = await pier(['apps', 'list', '--json'], { ...other, PIER_API_URL: second.apiUrl, PIER_TOKEN: token, PIER_API_FINGERPRINT: fingerprint });
  assert.equal(again.code, 0, again.stderr);
  await second.stop();
});

interface NsServer {
  apiUrl: string;
  fingerprint: string;
  stderr: () => string;
  stop: () => Promise<void>;
}

/** `pier server` in the namespace, up once it prints its API address and fingerprint. */
async function startServer(ns: string, args: string[], env: NodeJS.ProcessEnv): Promise<NsServer> {
  // nsenter execs the command: the child is the server itself, and signals reach it.
  const child: ChildProcess = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, PIER_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 15_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
  const started = await new Promise<{ apiUrl: string; fingerprint: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pier server did not start in 120 s\n${out}\n${err.slice(-4000)}`)), 120_000);
    child.stdout?.on('data', () => {
      const url = /API on (https?:\/\/\S+)/.exec(out)?.[1];
      const fingerprint = /API certificate fingerprint (SHA256:\S+)/.exec(out)?.[1];
      if (url && fingerprint && /admin token in/.test(out)) {
        clearTimeout(timer);
        resolve({ apiUrl: url, fingerprint });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pier server exited with ${code}\n${out}\n${err.slice(-4000)}`));
    });
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  return { ...started, stderr: () => err, stop };
}
