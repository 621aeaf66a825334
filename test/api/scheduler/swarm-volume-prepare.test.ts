// The volumes of a group on a swarm (api/scheduler/swarm-volumes.ts prepare), on a real database
// and a real `pier agent` over a folder: a group with tasks gets its volume made on the node by
// the agent; a group held at zero tasks makes none. That matters after `pier volumes delete`: a
// pass of the zero-task group (a redeploy) would otherwise make a new, empty volume of that name,
// and the undelete of the old one would be refused (E_VOLUME_EXISTS).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { parseManifest } from '../../../api/manifest.js';
import { Secret } from '../../../api/registry/registry-credentials.js';
import type { SwarmNodeInfo, SwarmServices } from '../../../api/runtime/swarm-services.js';
import { createSwarmVolumes } from '../../../api/scheduler/swarm-volumes.js';
import { createAgentRoots } from '../../../api/volumes/agent-roots.js';
import { nodes, volumes } from '../../../db/schema/index.js';
import { createControlPlane, IMAGE, INSTALLATION } from '../../support/memory-control-plane.js';
import { startNodeAgent } from '../../support/node-agent.js';

const NODE: SwarmNodeInfo = {
  id: 'nodeworker1',
  hostname: 'worker',
  address: '10.9.0.2',
  state: 'ready',
  availability: 'active',
  role: 'worker',
  labels: {},
  capacity: { cpus: 2, memoryBytes: 2 ** 30 },
  engineVersion: '20.10.24',
};

test('on a swarm, a group held at zero tasks makes no volume; with a task it is made on the node, and found again after', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'pier-swprep-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const agent = await startNodeAgent(t, root);
  const log = pino({ level: 'silent' });
  const agents = createAgentRoots({ agents: { [NODE.address]: agent.url }, token: new Secret(agent.token) }, log);
  await agents.connectAll();
  const cp = await createControlPlane(t, { health: false });
  const toml = `app = "prep"\nimage = "${IMAGE}"\n[processes.db]\ncmd = ["sleep", "600"]\ncount = 0\n[[volumes]]\nname = "data"\nprocess = "db"\npath = "/data"\n`;
  const { app } = await cp.deploy(toml);
  // The node's row, as the swarm reconciler keeps it (a volume names its node).
  await cp.db.insert(nodes).values({ id: `node_${NODE.id}`, name: NODE.hostname, endpoint: `swarm://${NODE.id}`, publishAddress: NODE.address, labels: {}, state: 'ready', lastSeenAt: new Date() });
  const manifest = parseManifest(toml);
  const lease = await cp.leases.acquire(app.id, new AbortController().signal);
  assert.ok(lease);
  // prepare() never asks Swarm for anything: the services are not reached in this test.
  const swarmVolumes = createSwarmVolumes({ db: cp.db, leases: cp.leases, agents, services: {} as SwarmServices, installationId: INSTALLATION, log });
  const rows = () => cp.db.select().from(volumes).where(eq(volumes.appId, app.id));
  const onNode = async () => readdir(join(root, 'volumes')).catch((): string[] => []);

  assert.equal(await swarmVolumes.prepare(app, manifest, 'db', [NODE], lease, 0), undefined, 'zero tasks: nothing to mount');
  assert.deepEqual(await rows(), [], 'and no volume made');
  assert.deepEqual(await onNode(), []);

  const first = await swarmVolumes.prepare(app, manifest, 'db', [NODE], lease, 1);
  assert.equal(first?.nodeId, NODE.id);
  const [made] = await rows();
  assert.ok(made);
  assert.equal(made.root, `node:${NODE.address}`);
  assert.deepEqual(await onNode(), [made.id], 'made on the node by its agent');
  assert.equal(first?.mounts.length, 1);
  assert.equal(first?.mounts[0]?.device, join(root, 'volumes', made.id));

  // Made once: at zero tasks the group keeps its pin and mount, and nothing new is made.
  const held = await swarmVolumes.prepare(app, manifest, 'db', [NODE], lease, 0);
  assert.deepEqual(held, first);
  assert.equal((await rows()).length, 1);

  // Deleted (as pier volumes delete leaves it): a zero-task pass makes no new volume of the name.
  await cp.db.update(volumes).set({ state: 'deleted', deletedAt: new Date() }).where(eq(volumes.id, made.id));
  assert.equal(await swarmVolumes.prepare(app, manifest, 'db', [NODE], lease, 0), undefined);
  assert.deepEqual((await rows()).map((v) => v.id), [made.id], 'no second volume named data');
});
