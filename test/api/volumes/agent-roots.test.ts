// The roots of a swarm's nodes, one per configured agent: a real `pier agent` answers and its root
// is `node:ADDRESS` among the server's roots; a node with no agent configured is
// E_NODE_AGENT_MISSING naming the node and the flag; an agent that has not answered yet is
// E_AGENT_UNREACHABLE, and is asked again.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import pino from 'pino';
import { Secret } from '../../../api/registry/registry-credentials.js';
import { createAgentRoots, nodeRootAddress, nodeRootName } from '../../../api/volumes/agent-roots.js';
import { dockerVolumeName } from '../../../api/volumes/docker-volume-name.js';
import { openVolumeDriver } from '../../../api/volumes/open-volume-driver.js';
import { createVolumeRoots } from '../../../api/volumes/volume-roots.js';
import { tempRoot } from '../../support/btrfs-loop.js';
import { startNodeAgent } from '../../support/node-agent.js';

const log = pino({ level: 'silent' });

test('a node root is named node:ADDRESS, and its Docker volume name keeps to Docker\'s characters', () => {
  assert.equal(nodeRootName('10.0.0.2'), 'node:10.0.0.2');
  assert.equal(nodeRootAddress('node:fd00::2'), 'fd00::2');
  assert.equal(nodeRootAddress('default'), null);
  assert.equal(dockerVolumeName('vol_1', 'node:fd00::2'), 'pier-vol_1-node-fd00--2');
  assert.equal(dockerVolumeName('vol_1'), 'pier-vol_1');
});

test('a configured agent is the driver of its node\'s root; a node without one is E_NODE_AGENT_MISSING naming it and the flag', async (t) => {
  const agentRoot = await tempRoot(t);
  const agent = await startNodeAgent(t, agentRoot);
  const nodes = createAgentRoots({ agents: { '10.9.0.2': agent.url }, token: new Secret(agent.token) }, log);
  const roots = createVolumeRoots(new Map([['default', await openVolumeDriver(await tempRoot(t), 'dir')]]), nodes);
  assert.deepEqual(nodes.addresses(), ['10.9.0.2']);
  const driver = await nodes.connect('10.9.0.2');
  assert.equal(driver.root, agentRoot);
  assert.equal(roots.get('node:10.9.0.2'), driver);
  await driver.create('vol_a');
  assert.equal(await roots.get('node:10.9.0.2').exists('vol_a'), true);
  for (const call of [() => roots.get('node:10.9.0.3'), () => nodes.get('10.9.0.3')]) {
    assert.throws(call, (err: Error & { code?: string; hint?: string }) => err.code === 'E_NODE_AGENT_MISSING' && /10\.9\.0\.3/.test(err.message) && /--node-agent 10\.9\.0\.3=/.test(err.hint ?? ''));
  }
  await assert.rejects(nodes.connect('10.9.0.3'), (err: Error & { code?: string }) => err.code === 'E_NODE_AGENT_MISSING');
  // A root of this machine that is not there stays E_VOLUME_ROOT_UNKNOWN.
  assert.throws(() => roots.get('fast'), (err: Error & { code?: string }) => err.code === 'E_VOLUME_ROOT_UNKNOWN');
});

test('an agent that has not answered is E_AGENT_UNREACHABLE, and is asked again at each use', async () => {
  // A port nothing listens on yet: taken, then freed.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const nodes = createAgentRoots({ agents: { '10.9.0.4': `http://127.0.0.1:${port}` }, token: new Secret('a-token-of-enough-length') }, log);
  assert.throws(() => nodes.get('10.9.0.4'), (err: Error & { code?: string }) => err.code === 'E_AGENT_UNREACHABLE' && /has not answered yet/.test(err.message));
  await assert.rejects(nodes.connect('10.9.0.4'), (err: Error & { code?: string }) => err.code === 'E_AGENT_UNREACHABLE');
  // connectAll logs and never throws; the agent is asked again at the next use.
  await nodes.connectAll();
  assert.throws(() => nodes.get('10.9.0.4'), (err: Error & { code?: string }) => err.code === 'E_AGENT_UNREACHABLE');
  await assert.rejects(nodes.connect('10.9.0.4'), (err: Error & { code?: string }) => err.code === 'E_AGENT_UNREACHABLE');
});

test('offered ports, as each agent says now: null for an agent that does not watch its engine, unreachable for one that does not answer (never an error)', async (t) => {
  const agent = await startNodeAgent(t, await tempRoot(t));
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  // An agent that takes the connection and never answers: bounded, not a hang.
  const silent = createServer(() => undefined).listen(0, '127.0.0.1');
  t.after(() => silent.close());
  await new Promise((r) => silent.once('listening', r));
  const nodes = createAgentRoots(
    { agents: { '10.9.0.5': agent.url, '10.9.0.6': `http://127.0.0.1:${port}`, '10.9.0.7': `http://127.0.0.1:${(silent.address() as { port: number }).port}` }, token: new Secret(agent.token) },
    log,
  );
  assert.deepEqual(await nodes.offeredPorts(), { '10.9.0.5': null, '10.9.0.6': 'unreachable', '10.9.0.7': 'unreachable' });
  assert.deepEqual(await createAgentRoots(undefined, log).offeredPorts(), {});
});
