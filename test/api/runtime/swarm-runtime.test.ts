// The swarm runtime on the real engine: it starts no container itself, makes no network, and finds
// a task's container on whichever node engine holds it (here the machine's engine stands in for a
// worker's, behind a manager that does not answer), for inspect, exec, logs and stop. The swarm
// flows themselves run on a two-node swarm in test/e2e/swarm.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { createSwarmRuntime } from '../../../api/runtime/swarm-runtime.js';
import type { SwarmServices } from '../../../api/runtime/swarm-services.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';

const run = promisify(execFile);
const log = pino({ level: 'silent' });
const code = (c: string) => (err: Error & { code?: string }) => err.code === c;

test('swarm runtime: no container of its own, no network; a task container is reached through the node engine that holds it', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const name = `pier-swarm-rt-${randomBytes(4).toString('hex')}`;
  const { stdout } = await run('docker', ['run', '-d', '--name', name, '--label', 'dev.pier.managed=true', '--label', `dev.pier.app=${name}`, image, 'sh', '-c', 'echo hello from the task; exec sleep 300']);
  const id = stdout.trim();
  t.after(() => run('docker', ['rm', '-f', id]).then(() => undefined));

  // Three nodes in the swarm, one engine known besides the (unreachable) manager's.
  let nodes = 3;
  const services = { nodes: async () => Array.from({ length: nodes }, (_, i) => ({ id: `n${i}` })) } as unknown as SwarmServices;
  const runtime = createSwarmRuntime({
    manager: createDockerRuntime({ socketPath: `/nonexistent/${name}.sock`, log }),
    services,
    nodeEngines: new Map([['198.18.0.2', createDockerRuntime({ log })]]),
  });

  await assert.rejects(runtime.run({ name: `${name}-x`, image, labels: {} }), code('E_SWARM_NO_CONTAINERS'));
  const net = await runtime.ensureNetwork({ name: `${name}-net`, subnet: '198.19.250.0/24', labels: {} });
  assert.equal(net.created, false);
  await assert.rejects(run('docker', ['network', 'inspect', `${name}-net`]), 'no network was made');

  const info = await runtime.inspect(id.slice(0, 12));
  assert.equal(info?.id, id);
  assert.equal(info?.state, 'running');
  // Listing needs the manager, which does not answer here.
  await assert.rejects(runtime.list({ 'dev.pier.app': name }), code('E_RUNTIME_UNAVAILABLE'));
  const out = await runtime.exec(id, ['cat', '/proc/1/cmdline']);
  assert.equal(out.exitCode, 0);
  assert.match(out.stdout, /sleep/);
  assert.deepEqual((await runtime.logs(id, 10)).map((l) => l.line), ['hello from the task']);

  // A container no engine holds: inspect says so, exec and logs name the missing engine setting,
  // and a stop is refused while some node has no engine known (it may be there).
  assert.equal(await runtime.inspect('0123456789ab'), null);
  await assert.rejects(runtime.exec('0123456789ab', ['true']), code('E_NODE_ENGINE_UNKNOWN'));
  await assert.rejects(runtime.logs('0123456789ab', 1), code('E_NODE_ENGINE_UNKNOWN'));
  await assert.rejects(runtime.stop('0123456789ab', 1), code('E_NODE_ENGINE_UNKNOWN'));
  nodes = 2;
  await runtime.stop('0123456789ab', 1);

  await runtime.stop(id, 1);
  assert.equal((await runtime.inspect(id))?.state, 'exited', 'stopped on the engine that holds it');
});
