// Pier's own registry: the real docker-registry on loopback, its storage and port under its
// folder, restarted (with an event) when it dies, kept on its port across starts, and a missing
// program reported, retried and never thrown.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { createLocalRegistry, type LocalRegistry } from '../../../api/registry/local-registry.js';
import type { RegistryEvent } from '../../../api/registry/registry.js';
import { captureLog } from '../../support/log-capture.js';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-registry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function started(t: TestContext, dir: string, events: RegistryEvent[] = [], binary?: string): LocalRegistry {
  const registry = createLocalRegistry({ dir, log: captureLog().log, onEvent: (e) => events.push(e), binary });
  t.after(() => registry.close());
  return registry;
}

async function status(host: string): Promise<number> {
  const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(2_000) });
  await res.body?.cancel();
  return res.status;
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await Promise.resolve().then(check).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

test('the local registry serves the registry API on loopback, its port kept in its folder', async (t) => {
  const dir = await tempDir(t);
  const registry = started(t, dir);
  assert.deepEqual(await registry.start(), { ok: true });
  assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
  assert.equal(await status(registry.host), 200);
  assert.equal((await readFile(join(dir, 'port'), 'utf8')).trim(), registry.host.split(':')[1]);
  registry.ensureServing();
  await registry.close();
  await assert.rejects(status(registry.host), 'closed: nothing answers on its port');
});

test('--registry-listen: the registry listens on the address given, and images are named by it', async (t) => {
  // 127.0.0.2 stands for an address the nodes reach (every 127/8 address is this machine's).
  const dir = await tempDir(t);
  const registry = createLocalRegistry({ dir, log: captureLog().log, listen: { host: '127.0.0.2', port: 0 } });
  t.after(() => registry.close());
  assert.deepEqual(await registry.start(), { ok: true });
  assert.match(registry.host, /^127\.0\.0\.2:\d+$/);
  assert.equal(registry.url, `http://${registry.host}`);
  assert.equal(await status(registry.host), 200);
  const port = registry.host.split(':')[1];
  await assert.rejects(status(`127.0.0.1:${port}`), 'nothing on the default loopback address');
});

test('--registry-listen with an IPv6 address: the registry starts there (the address is quoted in its YAML config)', async (t) => {
  const dir = await tempDir(t);
  const registry = createLocalRegistry({ dir, log: captureLog().log, listen: { host: '::1', port: 0 } });
  t.after(() => registry.close());
  assert.deepEqual(await registry.start(), { ok: true });
  assert.match(registry.host, /^\[::1\]:\d+$/);
  assert.equal(await status(registry.host), 200);
});

test('a registry that dies is restarted on the same port, with an event for each', async (t) => {
  const dir = await tempDir(t);
  const events: RegistryEvent[] = [];
  const registry = started(t, dir, events);
  assert.deepEqual(await registry.start(), { ok: true });
  const host = registry.host;
  const first = registry.pid;
  assert.ok(first);
  process.kill(first, 'SIGKILL');
  await until(() => events.some((e) => e.type === 'registry.exited'), 'the exit is reported');
  await until(async () => registry.pid !== first && (await status(host)) === 200, 'it serves again');
  assert.equal(registry.host, host, 'same port: pinned references stay valid');
  await until(() => events.some((e) => e.type === 'registry.restarted'), 'the restart is reported');
  registry.ensureServing();
});

test('the registry ends when the process that started it is killed (no registry left holding the port)', async (t) => {
  const dir = await tempDir(t);
  const module = new URL('../../../api/registry/local-registry.js', import.meta.url).href;
  const script = `import { createLocalRegistry } from ${JSON.stringify(module)};
import { pino } from 'pino';
const r = createLocalRegistry({ dir: ${JSON.stringify(dir)}, log: pino({ level: 'silent' }) });
await r.start();
console.log(r.pid);
setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('../../../../', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill('SIGKILL'));
  const pid = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()))));
  assert.ok(pid > 0);
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  assert.ok(alive());
  // Should the registry outlive its parent (the defect under test), end it here.
  t.after(() => {
    if (alive()) process.kill(pid, 'SIGKILL');
  });
  parent.kill('SIGKILL');
  await until(() => !alive(), 'the registry ends with its parent');
});

test('a second start on the same folder comes back on the port it had', async (t) => {
  const dir = await tempDir(t);
  const one = started(t, dir);
  assert.deepEqual(await one.start(), { ok: true });
  const host = one.host;
  await one.close();
  const two = started(t, dir);
  assert.deepEqual(await two.start(), { ok: true });
  assert.equal(two.host, host);
  assert.equal(await status(two.host), 200);
});

test('a registry program that is not installed is reported, retried, and builds get E_REGISTRY_UNAVAILABLE', async (t) => {
  const dir = await tempDir(t);
  const registry = started(t, dir, [], join(dir, 'no-such-registry'));
  const result = await registry.start();
  assert.equal(result.ok, false);
  assert.match(!result.ok ? result.problem : '', /not installed/);
  assert.throws(
    () => registry.ensureServing(),
    (err: Error & { code?: string; status?: number; hint?: string }) => err.code === 'E_REGISTRY_UNAVAILABLE' && err.status === 503 && /apt-get install docker-registry/.test(err.hint ?? ''),
  );
});
