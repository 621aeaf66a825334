// What the API server pushes to the node agents as a swarm's private names (api/scheduler/
// swarm-names.ts): for each environment's overlay, the ready instances of the groups that offer
// ports, by IPv4 and, once its node's agent has said it gave it one, by IPv6; an instance leaves
// at the next round once it is unhealthy or draining; an overlay with no ready instance is pushed
// empty (so names leave the hosts files); a push an agent did not take is made again. The rows
// and networks are the in-memory control plane's (real database); the agents are a recorder (the
// agent's side is test/api/agent/task-firewall.test.ts, the whole path test/e2e/swarm-private).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, eq, inArray } from 'drizzle-orm';
import { instances } from '../../../db/schema/index.js';
import { taskIpv6 } from '../../../api/agent/task-firewall.js';
import { createPrivateNetworks } from '../../../api/private/private-networks.js';
import { parsePrivatePrefixes, randomUlaPrefix } from '../../../api/private/private-prefixes.js';
import { createSwarmNames, type NamesPush } from '../../../api/scheduler/swarm-names.js';
import type { AgentRoots } from '../../../api/volumes/agent-roots.js';
import { createControlPlane, IMAGE, INSTALLATION } from '../../support/memory-control-plane.js';

test('the ready instances of offering groups, by IPv4 and the IPv6 their agents gave, per overlay; unhealthy and draining ones leave; a refused push is made again', async (t) => {
  const cp = await createControlPlane(t, { health: false });
  const manifest = [
    'app = "api"', `image = "${IMAGE}"`,
    '[processes.web]', 'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]', 'count = 2',
    '[processes.worker]', 'cmd = ["sleep", "100000"]', 'count = 1',
    '[[private]]', 'process = "web"', 'ports = [8080]',
  ].join('\n');
  const { app } = await cp.deploy(manifest);
  const rowsOf = () => cp.db.select().from(instances).where(and(eq(instances.appId, app.id), inArray(instances.observedState, ['running'])));
  await cp.converge(app.id, async () => (await rowsOf()).length === 3, '3 running instances');
  const log = cp.logs.log;
  const networks = createPrivateNetworks({ db: cp.db, runtime: cp.runtime, prefixes: parsePrivatePrefixes(randomUlaPrefix(), undefined), log, installationId: INSTALLATION });
  const network = await networks.networkFor({ orgId: cp.orgId });
  // The tasks on the overlay (on a swarm the service spec puts them there), every one ready.
  for (const row of await rowsOf()) {
    await cp.runtime.connectNetwork(row.containerId as string, network.name);
    await cp.db.update(instances).set({ health: 'healthy' }).where(eq(instances.id, row.id));
  }
  const webs = (await rowsOf()).filter((r) => r.process === 'web');
  const ipv4Of = async (id: string) => (await cp.runtime.inspect(id))?.endpoints?.[network.name]?.ipv4 as string;
  const [a, b] = [await ipv4Of(webs[0]?.containerId as string), await ipv4Of(webs[1]?.containerId as string)];

  const pushes: NamesPush[] = [];
  const [webA, webB] = [webs[0]?.containerId as string, webs[1]?.containerId as string];
  // What the agent says its tasks have: at first only web A has its IPv6 address.
  let reported: Record<string, string> = { [webA]: taskIpv6(network.ipv6Subnet, a) };
  let failure: string | null = null;
  const agents = { pushNames: async (body: NamesPush) => (pushes.push(body), { '10.0.0.1': failure ?? { ipv6: reported } }) } as unknown as AgentRoots;
  const names = createSwarmNames({ db: cp.db, runtime: cp.runtime, networks, agents, log });
  t.after(() => names.close());
  const hostsNow = () => pushes.at(-1)?.networks.find((n) => n.subnet === network.ipv4Subnet)?.hosts;
  const both = ['api.internal', 'web.api.internal'];

  const sorted = (addresses: string[]) => addresses.map((address) => ({ address, names: both })).sort((x, y) => x.address.localeCompare(y.address));
  await names.round();
  assert.equal(pushes.length, 2, 'pushed, and again at once with the IPv6 address the agent told of');
  assert.deepEqual(pushes[0]?.networks.find((n) => n.subnet === network.ipv4Subnet)?.hosts, sorted([a, b]), 'by IPv4 until an agent says a task has IPv6');
  assert.deepEqual(hostsNow(), sorted([a, b, taskIpv6(network.ipv6Subnet, a)]), 'web B has no IPv6 address (yet): never named by one; the worker offers nothing and answers no name');
  await names.round();
  assert.equal(pushes.length, 2, 'nothing changed: nothing pushed');
  reported = { ...reported, [webB]: taskIpv6(network.ipv6Subnet, b) };
  // The names are pushed again every 30 s; the agent's answer then brings B's address.
  await cp.db.update(instances).set({ health: 'starting' }).where(eq(instances.id, webs[1]?.id as string));
  await names.round();
  await cp.db.update(instances).set({ health: 'healthy' }).where(eq(instances.id, webs[1]?.id as string));
  await names.round();
  assert.deepEqual(hostsNow(), sorted([a, b, taskIpv6(network.ipv6Subnet, a), taskIpv6(network.ipv6Subnet, b)]), 'both web tasks, by IPv4 and IPv6');

  await cp.db.update(instances).set({ health: 'unhealthy' }).where(eq(instances.id, webs[0]?.id as string));
  await names.round();
  assert.deepEqual(hostsNow()?.map((h) => h.address).sort(), [b, taskIpv6(network.ipv6Subnet, b)].sort(), 'the unhealthy one left');

  await cp.db.update(instances).set({ drainUntil: new Date(Date.now() + 60_000) }).where(eq(instances.id, webs[1]?.id as string));
  await names.round();
  assert.deepEqual(hostsNow(), [], 'the draining one left too: the overlay is pushed empty');

  // An agent that did not take the push gets it again at the next round, changed or not.
  await cp.db.update(instances).set({ health: 'healthy', drainUntil: null }).where(inArray(instances.id, webs.map((w) => w.id)));
  failure = 'no answer in 5 s';
  await names.round();
  const count = pushes.length;
  failure = null;
  await names.round();
  assert.equal(pushes.length, count + 1, 'pushed again');
  assert.equal(hostsNow()?.length, 4);
  assert.equal(cp.logs.messages('cannot push the private names to the node agent; trying again').length, 1, 'said once');
  assert.equal(cp.logs.messages('private names pushed to the node agent again').length, 1);
});
