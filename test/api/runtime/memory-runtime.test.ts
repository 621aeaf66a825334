// The in-memory runtime: the Runtime contract, plus what only it offers tests (start latency,
// crashes from outside, an engine that goes away and comes back).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMemoryRuntime } from '../../../api/runtime/memory-runtime.js';
import { DEFAULT_NETWORK, DEFAULT_NETWORK_SUBNET } from '../../../api/config.js';
import { LABELS } from '../../../api/runtime/runtime.js';
import { runtimeContract, waitFor } from './runtime-contract.js';

const IMAGE = 'pier-test/busybox:1';

runtimeContract('memory runtime', async () => {
  const runtime = createMemoryRuntime({ images: [IMAGE], startLatencyMs: 5 });
  const network = { name: DEFAULT_NETWORK, subnet: DEFAULT_NETWORK_SUBNET, labels: { [LABELS.managed]: 'true' } };
  return { runtime, image: IMAGE, network, kill: async (id) => runtime.crash(id, { exitCode: 137 }) };
});

const spec = (name: string, cmd: string[]) => ({ name, image: IMAGE, cmd, labels: { [LABELS.managed]: 'true', [LABELS.instance]: name } });

test('a container is "created" during its start latency and running after it', async () => {
  const runtime = createMemoryRuntime({ images: [IMAGE], startLatencyMs: 200 });
  const started = runtime.run(spec('slow', ['sleep', '60']));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((await runtime.inspect('slow'))?.state, 'created');
  const id = await started;
  assert.equal((await runtime.inspect(id))?.state, 'running');
  assert.equal(runtime.runs().get('slow'), 1);
});

test('a crash from outside ends the process with its code, or as an OOM kill', async () => {
  const runtime = createMemoryRuntime({ images: [IMAGE] });
  const a = await runtime.run(spec('a', ['nc', '-ll', '-p', '80']));
  const b = await runtime.run(spec('b', ['nc', '-ll', '-p', '80']));
  runtime.crash(a);
  runtime.crash(b, { oom: true });
  assert.deepEqual(await runtime.inspect(a).then((i) => [i?.state, i?.exitCode, i?.oomKilled]), ['exited', 139, false]);
  assert.deepEqual(await runtime.inspect(b).then((i) => [i?.state, i?.exitCode, i?.oomKilled]), ['exited', 137, true]);
});

test('an engine that is down fails every call with E_RUNTIME_UNAVAILABLE and ends event streams', async () => {
  const runtime = createMemoryRuntime({ images: [IMAGE] });
  const ac = new AbortController();
  const stream = (async () => {
    for await (const _ of runtime.events(ac.signal)) void _;
  })();
  await new Promise((r) => setImmediate(r));
  runtime.setAvailable(false);
  await assert.rejects(stream, { code: 'E_RUNTIME_UNAVAILABLE' });
  for (const call of [() => runtime.ping(), () => runtime.list({}), () => runtime.stop('x', 1), () => runtime.run(spec('c', ['true']))]) {
    await assert.rejects(call(), { code: 'E_RUNTIME_UNAVAILABLE', status: 503 });
  }
  runtime.setAvailable(true);
  await runtime.ping();
  const id = await runtime.run(spec('c', ['sh', '-c', 'exit 2']));
  assert.equal((await waitFor('exit', async () => ((await runtime.inspect(id))?.state === 'exited' ? runtime.inspect(id) : undefined)))?.exitCode, 2);
});

test('a network of that name made by someone else is E_NETWORK_CONFLICT; an httpd answers GET at its address', async () => {
  const runtime = createMemoryRuntime({ images: [IMAGE] });
  runtime.addForeignNetwork('theirs', '10.99.0.0/16');
  await assert.rejects(runtime.ensureNetwork({ name: 'theirs', subnet: '10.99.0.0/16', labels: { [LABELS.managed]: 'true' } }), { code: 'E_NETWORK_CONFLICT' });
  await runtime.ensureNetwork({ name: 'pier', subnet: DEFAULT_NETWORK_SUBNET, labels: { [LABELS.managed]: 'true' } });
  const id = await runtime.run({ ...spec('web', ['sh', '-c', 'sleep 0.05; httpd -f -p 8080']), network: 'pier' });
  const address = (await runtime.inspect(id))?.networks.pier;
  assert.ok(address);
  await assert.rejects(runtime.connect(address, 8080, { timeoutMs: 100 }), { code: 'ECONNREFUSED' }, 'not yet: the script sleeps first');
  const conn = await waitFor('httpd to listen', () => runtime.connect(address, 8080, { timeoutMs: 100 }).catch(() => null));
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    conn.on('data', (c: Buffer) => (text += c.toString()));
    conn.on('end', () => resolve(text));
    conn.write('GET / HTTP/1.0\r\n\r\n');
  });
  assert.match(answer, /^HTTP\/1\.0 200 OK/);
  await assert.rejects(runtime.connect('198.19.255.254', 8080, { timeoutMs: 100 }), { code: 'EHOSTUNREACH' });
});
