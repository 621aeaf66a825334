// The Docker runtime against the real engine: images, containers on Pier's network (reached at
// their address, nothing published), the network's creation and conflicts, inspect/list/logs,
// the event stream, and the error codes callers rely on.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { DEFAULT_NETWORK, DEFAULT_NETWORK_SUBNET } from '../../../api/config.js';
import { LABELS, type ContainerSpec, type NetworkSpec, type RuntimeEvent } from '../../../api/runtime/runtime.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';

const run = promisify(execFile);
const runtime = createDockerRuntime({ log: pino({ level: 'silent' }) });
const app = `test-${process.pid}-${randomBytes(3).toString('hex')}`;
const network: NetworkSpec = { name: DEFAULT_NETWORK, subnet: DEFAULT_NETWORK_SUBNET, labels: { [LABELS.managed]: 'true' } };

function uniqueName(what: string): string {
  return `pier-test-${process.pid}-${randomBytes(4).toString('hex')}-${what}`;
}

function labels(instance: string): Record<string, string> {
  return { [LABELS.managed]: 'true', [LABELS.app]: app, [LABELS.process]: 'web', [LABELS.instance]: instance };
}

/** Runs a container from the busybox image and removes it when the test ends. */
async function start(t: TestContext, what: string, spec: Partial<ContainerSpec>): Promise<{ id: string; name: string }> {
  const image = await ensureBusyboxImage();
  const name = uniqueName(what);
  const id = await runtime.run({ name, image, labels: labels(name), ...spec });
  t.after(() => runtime.remove(id));
  return { id, name };
}

/** Polls until `check` returns a value; bounded so a broken engine fails the test instead of hanging. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined | null | false>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await check();
    if (value !== undefined && value !== null && value !== false) return value;
    await delay(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** One round trip through the echo server; null when the connection closed before the echo (not listening yet). */
function echoOnce(host: string, port: number, payload: Buffer): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const chunks: Buffer[] = [];
    let received = 0;
    socket.setTimeout(5000, () => socket.destroy(new Error('echo timed out')));
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= payload.length) {
        socket.end();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.on('close', () => resolve(received >= payload.length ? Buffer.concat(chunks) : null));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'ECONNREFUSED' ? resolve(null) : reject(err)));
  });
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

test('resolving the imported busybox image gives its id and no registry digest', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await ensureBusyboxImage();
  const resolved = await runtime.resolveImage('pier-test/busybox:1', 'never');
  // The engine that made the image (here, imported it) is on record: its version.
  const engine = (await promisify(execFile)('docker', ['version', '--format', '{{.Server.Version}}'])).stdout.trim();
  assert.deepEqual(resolved, { reference: 'pier-test/busybox:1', id, repoDigest: null, builtBy: engine });
  assert.match(resolved.id, /^sha256:[0-9a-f]{64}$/);
});

test('a missing image with pull policy never is E_IMAGE_NOT_FOUND naming the reference', async (t) => {
  if (!(await requireDocker(t))) return;
  const reference = `pier-test/missing-${randomBytes(4).toString('hex')}:1`;
  await assert.rejects(runtime.resolveImage(reference, 'never'), (err: Error) => {
    assert.equal(codeOf(err), 'E_IMAGE_NOT_FOUND');
    assert.ok(err.message.includes(reference), err.message);
    return true;
  });
});

test('a missing image is pulled from a loopback registry and resolves with its repo digest', async (t) => {
  if (!(await requireDocker(t))) return;
  const registry = await startRegistry(t);
  if (registry === null) return;
  const reference = `${registry}/pier-test/pull-${randomBytes(4).toString('hex')}:1`;
  const id = await ensureBusyboxImage();
  await run('docker', ['tag', id, reference]);
  t.after(() => run('docker', ['rmi', reference]).then(() => undefined, () => undefined));
  await run('docker', ['push', reference]);
  await run('docker', ['rmi', reference]);

  const pulled = await runtime.resolveImage(reference, 'missing');
  assert.equal(pulled.id, id);
  assert.match(pulled.repoDigest ?? '', new RegExp(`^${registry}/pier-test/pull-[0-9a-f]+@sha256:[0-9a-f]{64}$`));
  assert.deepEqual(await runtime.resolveImage(reference, 'always'), pulled);

  const absent = reference.replace(/:1$/, ':2');
  await assert.rejects(runtime.resolveImage(absent, 'missing'), (err: Error) => {
    assert.equal(codeOf(err), 'E_IMAGE_NOT_FOUND');
    assert.ok(err.message.includes(absent), err.message);
    return true;
  });
});

/** Debian's docker-registry on a free loopback port (Docker trusts 127.0.0.0/8 over plain HTTP). */
async function startRegistry(t: TestContext): Promise<string | null> {
  const binary = await run('sh', ['-c', 'command -v docker-registry']).then((r) => r.stdout.trim(), () => '');
  if (binary === '') {
    t.skip('docker-registry not installed (apt-get install docker-registry)');
    return null;
  }
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'pier-registry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, 'config.yml');
  const address = `127.0.0.1:${port}`;
  await writeFile(config, `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'data')}\nhttp:\n  addr: ${address}\nlog:\n  level: error\n`);
  const child = spawn(binary, ['serve', config], { stdio: 'ignore' });
  t.after(() => {
    child.kill();
  });
  await waitFor('the registry', () => fetch(`http://${address}/v2/`).then((r) => r.ok, () => false));
  return address;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address !== null && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

test('ping answers when the engine runs and says how to start it when the socket is wrong', async (t) => {
  if (!(await requireDocker(t))) return;
  await runtime.ping();
  const nowhere = createDockerRuntime({ socketPath: '/nonexistent/docker.sock', log: pino({ level: 'silent' }) });
  await assert.rejects(nowhere.ping(), (err: Error & { hint?: string }) => {
    assert.equal(codeOf(err), 'E_RUNTIME_UNAVAILABLE');
    assert.ok(err.message.includes('/nonexistent/docker.sock'), err.message);
    assert.ok(err.hint?.includes('start'), err.hint);
    return true;
  });
});

test('an echo container is reached at its address on the network, publishes nothing on the host, and is found by its labels', async (t) => {
  if (!(await requireDocker(t))) return;
  await runtime.ensureNetwork(network);
  const { id, name } = await start(t, 'echo', {
    cmd: ['nc', '-ll', '-p', '8080', '-e', 'cat'],
    env: { GREETING: 'hi there' },
    network: network.name,
    memoryBytes: 64 * 1024 * 1024,
  });

  const info = await runtime.inspect(id);
  assert.ok(info);
  assert.equal(info.name, name);
  assert.equal(info.state, 'running');
  assert.equal(info.exitCode, null);
  assert.equal(info.finishedAt, null);
  assert.ok(info.startedAt instanceof Date);
  assert.deepEqual(info.labels, labels(name));
  const address = info.networks[network.name];
  assert.ok(address, 'an address on the network');

  // Straight to the container: a refused connect means nc does not listen yet.
  const payload = Buffer.from(`hello pier ${randomBytes(8).toString('hex')}\n`);
  const echoed = await waitFor('the echo', () => echoOnce(address, 8080, payload));
  assert.deepEqual(echoed, payload);

  // No port is published on the host, so no docker-proxy answers for the container.
  const { stdout } = await run('docker', ['inspect', '--format', '{{json .HostConfig.PortBindings}} {{json .NetworkSettings.Ports}}', id]);
  assert.match(stdout.trim(), /^(\{\}|null) (\{\}|null)$/);

  const listed = await runtime.list({ [LABELS.app]: app, [LABELS.instance]: name });
  assert.equal(listed.length, 1);
  assert.equal(listed[0]?.id, id);
  assert.deepEqual(listed[0]?.networks, info.networks);
});

test('ensureNetwork creates a missing network as a labelled bridge on the subnet, and refuses one Pier did not make', async (t) => {
  if (!(await requireDocker(t))) return;
  // A name and a /24 of its own inside 198.18.0.0/15, removed at the end.
  const name = `pier-test-net-${process.pid}-${randomBytes(3).toString('hex')}`;
  const subnet = `198.18.${100 + (process.pid % 150)}.0/24`;
  t.after(() => run('docker', ['network', 'rm', name]).catch(() => undefined));
  const made = await runtime.ensureNetwork({ name, subnet, labels: { [LABELS.managed]: 'true' } });
  assert.equal(made.created, true);
  assert.equal(made.subnet, subnet);
  const { stdout } = await run('docker', ['network', 'inspect', '--format', '{{.Driver}} {{index .Labels "dev.pier.managed"}}', name]);
  assert.equal(stdout.trim(), 'bridge true');
  assert.equal((await runtime.ensureNetwork({ name, subnet, labels: { [LABELS.managed]: 'true' } })).id, made.id);

  const foreign = `pier-test-foreign-${process.pid}-${randomBytes(3).toString('hex')}`;
  t.after(() => run('docker', ['network', 'rm', foreign]).catch(() => undefined));
  await run('docker', ['network', 'create', '--internal', foreign]);
  await assert.rejects(runtime.ensureNetwork({ name: foreign, subnet, labels: { [LABELS.managed]: 'true' } }), (err: Error & { hint?: string }) => {
    assert.equal(codeOf(err), 'E_NETWORK_CONFLICT');
    assert.ok(err.message.includes(foreign), err.message);
    assert.match(err.hint ?? '', /PIER_NETWORK/);
    return true;
  });
});

test('events yield start, then kill and die with the exit code, for labelled containers', async (t) => {
  if (!(await requireDocker(t))) return;
  await ensureBusyboxImage();
  const ac = new AbortController();
  const seen: RuntimeEvent[] = [];
  const consumed = (async () => {
    for await (const event of runtime.events(ac.signal)) seen.push(event);
  })();
  t.after(async () => {
    ac.abort();
    await consumed;
  });

  // The subscription has no "ready" signal: a canary whose events arrive proves the stream is live.
  let live = false;
  for (let i = 0; i < 10 && !live; i++) {
    const canary = await start(t, 'canary', { cmd: ['true'] });
    live = (await waitForEvent(seen, canary.id, 'start', 40)) !== undefined;
  }
  assert.ok(live, 'the event stream never delivered a canary start');

  const { id } = await start(t, 'events', { cmd: ['sleep', '60'] });
  const started = await waitFor('start event', async () => seen.find((e) => e.containerId === id && e.type === 'start'));
  assert.equal(started.labels[LABELS.app], app);
  assert.ok(started.time instanceof Date);

  await run('docker', ['kill', id]);
  const died = await waitFor('die event', async () => seen.find((e) => e.containerId === id && e.type === 'die'));
  assert.equal(died.exitCode, 137);
  const killed = seen.find((e) => e.containerId === id && e.type === 'kill');
  assert.equal(killed?.signal, '9');

  ac.abort();
  await consumed; // ends without throwing
});

async function waitForEvent(seen: RuntimeEvent[], id: string, type: string, tries: number): Promise<RuntimeEvent | undefined> {
  for (let i = 0; i < tries; i++) {
    const event = seen.find((e) => e.containerId === id && e.type === type);
    if (event) return event;
    await delay(50);
  }
  return undefined;
}

test('a container whose command exits 3 shows exit code 3 and its finish time', async (t) => {
  if (!(await requireDocker(t))) return;
  const { id } = await start(t, 'exit3', { cmd: ['sh', '-c', 'exit 3'] });
  const info = await waitFor('exit', async () => {
    const i = await runtime.inspect(id);
    return i?.state === 'exited' ? i : undefined;
  });
  assert.equal(info.exitCode, 3);
  assert.equal(info.oomKilled, false);
  assert.equal(info.error, null);
  assert.ok(info.finishedAt instanceof Date);
  assert.deepEqual(info.networks, {});
  const listed = await runtime.list({ [LABELS.instance]: info.name });
  assert.equal(listed[0]?.exitCode, 3);
});

test('logs return the lines a container printed, oldest first, with their stream and time', async (t) => {
  if (!(await requireDocker(t))) return;
  const { id } = await start(t, 'logs', { cmd: ['sh', '-c', 'echo hello; echo oops >&2; sleep 1; echo "$GREETING"; sleep 30'], env: { GREETING: 'a b  c' } });
  const lines = await waitFor('three log lines', async () => {
    const l = await runtime.logs(id, 100);
    return l.length >= 3 ? l : undefined;
  });
  // stdout and stderr reach the log through separate pipes: the sleep makes the last line (tail 1, below) certain.
  // Order within a stream is kept; across stdout and stderr Docker does not promise one.
  assert.deepEqual(lines.filter((l) => l.stream === 'stdout').map((l) => l.line), ['hello', 'a b  c']);
  assert.deepEqual(lines.filter((l) => l.stream === 'stderr').map((l) => l.line), ['oops']);
  for (const [i, line] of lines.entries()) {
    assert.ok(line.time.getTime() > Date.UTC(2020, 0, 1));
    assert.ok(i === 0 || line.time >= (lines[i - 1]?.time ?? line.time), 'oldest first');
  }
  const last = await runtime.logs(id, 1);
  assert.deepEqual(last.map((l) => l.line), ['a b  c']);
});

test('a command that cannot start is E_CONTAINER_START with Docker\'s message, and leaves no container', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const name = uniqueName('badcmd');
  t.after(() => runtime.remove(name));
  await assert.rejects(runtime.run({ name, image, cmd: ['/no/such/binary'], labels: labels(name) }), (err: Error) => {
    assert.equal(codeOf(err), 'E_CONTAINER_START');
    assert.match(err.message, /no such file or directory|not found/);
    return true;
  });
  assert.equal(await runtime.inspect(name), null);
});

test('a container made with a no-copy volume mount before its bind volume\'s folder exists starts once it does, and sees its files', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const dir = await mkdtemp(join(tmpdir(), 'pier-nocopy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const device = join(dir, 'later');
  const volume = uniqueName('vol');
  const name = uniqueName('nocopy');
  t.after(async () => {
    await runtime.remove(name);
    await runtime.removeVolume(volume);
  });
  await runtime.ensureVolume({ name: volume, device, labels: { [LABELS.managed]: 'true', [LABELS.app]: app } });
  // /etc exists in the image: without noCopy, Docker mounts the volume at create to copy it (and fails here).
  await runtime.create({ name, image, cmd: ['cat', '/etc/marker'], labels: labels(name), mounts: [{ volume, target: '/etc', noCopy: true }] });
  await mkdir(device);
  await writeFile(join(device, 'marker'), 'moved\n');
  await runtime.start(name);
  const info = await waitFor('the container to exit', async () => {
    const i = await runtime.inspect(name);
    return i?.state === 'exited' ? i : undefined;
  });
  assert.equal(info.exitCode, 0);
  assert.deepEqual((await runtime.logs(name, 5)).map((l) => l.line), ['moved']);
});

test('a name left by an earlier attempt is E_CONTAINER_CONFLICT', async (t) => {
  if (!(await requireDocker(t))) return;
  const { name } = await start(t, 'conflict', { cmd: ['sleep', '30'] });
  const image = await ensureBusyboxImage();
  await assert.rejects(runtime.run({ name, image, cmd: ['sleep', '30'], labels: labels(name) }), (err: Error) => {
    assert.equal(codeOf(err), 'E_CONTAINER_CONFLICT');
    assert.ok(err.message.includes(name), err.message);
    return true;
  });
});

test('stop and remove are idempotent and inspect says null once the container is gone', async (t) => {
  if (!(await requireDocker(t))) return;
  const { id } = await start(t, 'stop', { cmd: ['sleep', '60'] });
  await runtime.stop(id, 1);
  const stopped = await runtime.inspect(id);
  assert.equal(stopped?.state, 'exited');
  await runtime.stop(id, 1);
  await runtime.remove(id);
  await runtime.remove(id);
  await runtime.stop(id, 1);
  assert.equal(await runtime.inspect(id), null);
  assert.deepEqual(await runtime.list({ [LABELS.instance]: stopped?.name ?? '' }), []);
});
