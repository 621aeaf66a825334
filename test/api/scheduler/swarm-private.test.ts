// Private networking on a swarm without an engine: the names and environment a group's service
// gets, the health its tasks start with, what happens when the network cannot be made, the
// service spec's Networks and the overlay's create body.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { parseManifest } from '../../../api/manifest.js';
import { PierError } from '../../../api/pier-error.js';
import { overlayCreateOptions, swarmOverlayName } from '../../../api/runtime/swarm-overlays.js';
import { toDockerServiceSpec } from '../../../api/runtime/swarm-service-spec.js';
import { swarmGroupSpec } from '../../../api/scheduler/swarm-group.js';
import { parseOffer } from '../../../api/agent/task-firewall.js';
import { createSwarmPrivate, swarmInitialHealth, swarmPrivateLimits, swarmPrivateState, swarmPrivateAliases, swarmPrivateEnv, withSwarmNames } from '../../../api/scheduler/swarm-private.js';

const manifest = parseManifest(`app = "shop"
image = "local/shop:1"

[processes.web]
[processes.api]
[processes.db]
check = { type = "exec", command = ["true"] }
[processes.worker]

[[endpoints]]
process = "web"
port = 443
target = 8080

[[endpoints]]
process = "api"
port = 80
target = 9000

[[private]]
process = "api"
ports = [9000, 9001]

[[private]]
process = "db"
ports = [5432]
`);

const release = { id: 'rel_1', version: 3, imageId: 'sha256:' + 'b'.repeat(64), manifest };
const app = { id: 'app_1', name: 'shop', orgId: 'org_1', environment: 'production' };
const log = pino({ level: 'silent' });

test('a group that offers ports answers PROCESS.APP.internal and APP.internal; another group answers nothing', () => {
  assert.deepEqual(swarmPrivateAliases('shop', manifest, 'api'), ['api.shop.internal', 'shop.internal']);
  assert.deepEqual(swarmPrivateAliases('shop', manifest, 'worker'), []);
  assert.deepEqual(swarmPrivateEnv('shop', manifest, 'api'), { PIER_PRIVATE_FAMILY: 'ipv4', PIER_PRIVATE_NAMES: 'api.shop.internal shop.internal' });
  assert.deepEqual(swarmPrivateEnv('shop', manifest, 'worker'), { PIER_PRIVATE_FAMILY: 'ipv4' });
});

test('a task starts unchecked when its implicit check would connect to a port offered only in [[private]] (not published); else as on one engine', () => {
  assert.equal(swarmInitialHealth(manifest, 'web'), 'starting', 'endpoint target: published, checked');
  assert.equal(swarmInitialHealth(manifest, 'api'), 'none', '9001 is offered only on the overlay');
  assert.equal(swarmInitialHealth(manifest, 'db'), 'starting', 'an explicit exec check runs');
  assert.equal(swarmInitialHealth(manifest, 'worker'), 'none');
});

test('every new service joins its environment\'s network; the names go on the offering group\'s service only, with the env; each says what it offers, and its IPv6 /64, to the node agents', async () => {
  const asked: unknown[] = [];
  const priv = createSwarmPrivate({ networkFor: async (a) => (asked.push(a), { name: 'pier-private-org_1', ipv4Subnet: '10.210.0.0/24', ipv6Subnet: 'fd70:6965:7200::/64' }), log });
  const base = swarmGroupSpec({ app, release, process: 'api', installationId: 'inst_1', replicas: 2 });
  const api = await priv.withPrivate(base, app, manifest, 'api');
  assert.deepEqual(api.networks, [{ name: 'pier-private-org_1', aliases: ['api.shop.internal', 'shop.internal'] }]);
  assert.equal(api.env.PIER_PRIVATE_NAMES, 'api.shop.internal shop.internal');
  assert.deepEqual(toDockerServiceSpec(api).TaskTemplate.Networks, [{ Target: 'pier-private-org_1', Aliases: ['api.shop.internal', 'shop.internal'] }]);
  const worker = await priv.withPrivate(swarmGroupSpec({ app, release, process: 'worker', installationId: 'inst_1', replicas: 1 }), app, manifest, 'worker');
  assert.deepEqual(worker.networks, [{ name: 'pier-private-org_1', aliases: [] }]);
  assert.deepEqual(asked, [app, app]);
  // The labels each node's agent enforces (api/agent/task-firewall.ts), on the service and its tasks;
  // a group that offers nothing is labelled too: every new connection from the overlay is refused.
  assert.deepEqual(parseOffer(toDockerServiceSpec(api).TaskTemplate.ContainerSpec.Labels), { subnet: '10.210.0.0/24', tcp: [9000, 9001], udp: [], ipv6: 'fd70:6965:7200::/64' });
  assert.deepEqual(parseOffer(toDockerServiceSpec(worker).TaskTemplate.ContainerSpec.Labels), { subnet: '10.210.0.0/24', tcp: [], udp: [], ipv6: 'fd70:6965:7200::/64' });
  assert.equal(parseOffer(toDockerServiceSpec(base).TaskTemplate.ContainerSpec.Labels), null, 'no private network: no labels');
  // Without private networking wired, the spec has no Networks at all (as before).
  assert.equal(toDockerServiceSpec(base).TaskTemplate.Networks, undefined);
});

test('when the network cannot be made, an offering group is not made (its names could not be added later); another group starts without it', async () => {
  const priv = createSwarmPrivate({ networkFor: async () => { throw new PierError('E_PRIVATE_NETWORKS_FULL', 'no free private subnet is left', { status: 503 }); }, log });
  const spec = (p: string) => swarmGroupSpec({ app, release, process: p, installationId: 'inst_1', replicas: 1 });
  await assert.rejects(priv.withPrivate(spec('api'), app, manifest, 'api'), { code: 'E_PRIVATE_NETWORKS_FULL' });
  const worker = await priv.withPrivate(spec('worker'), app, manifest, 'worker');
  assert.equal(worker.networks, undefined);
  assert.equal(worker.env.PIER_PRIVATE_FAMILY, undefined);
});

test('the overlay is attachable, IPv4 only to Docker (Swarm gives tasks no IPv6 address of their own: the node agents add it), labelled', () => {
  const body = overlayCreateOptions({ name: 'pier-private-org_1', subnet: '10.210.0.0/24', ipv6Subnet: 'fd70:6965:7200::/64', labels: { 'dev.pier.private': 'true' } });
  assert.equal(body.Driver, 'overlay');
  assert.equal(body.Attachable, true);
  assert.equal(body.EnableIPv6, undefined);
  assert.deepEqual(body.IPAM?.Config, [{ Subnet: '10.210.0.0/24' }]);
  assert.deepEqual(body.Labels, { 'dev.pier.private': 'true' });
});

test('describe on a swarm: each running task of an offering group shows its group\'s names (a task container does not list its service\'s aliases)', () => {
  const view = { network: null, instances: [{ id: 'a', process: 'api', ipv4: '10.0.0.2', ipv6: null, names: [] }, { id: 'w', process: 'worker', ipv4: '10.0.0.3', ipv6: null, names: [] }] };
  assert.deepEqual(withSwarmNames(view, 'shop', manifest).instances.map((i) => i.names), [['api.shop.internal', 'shop.internal'], []]);
  assert.equal(withSwarmNames(view, 'shop', undefined), view);
});

test('a preview\'s overlay name has no dot (Swarm wants a DNS name component); production\'s is unchanged', async () => {
  assert.equal(swarmOverlayName('pier-private-org_1'), 'pier-private-org_1');
  assert.equal(swarmOverlayName('pier-private-org_1.pr-7'), 'pier-private-org_1--pr-7');
  assert.equal(overlayCreateOptions({ name: 'pier-private-org_1.pr-7', subnet: '10.210.1.0/24', labels: {} }).Name, 'pier-private-org_1--pr-7');
  const priv = createSwarmPrivate({ networkFor: async () => ({ name: 'pier-private-org_1.pr-7', ipv4Subnet: '10.210.1.0/24', ipv6Subnet: 'fd70:6965:7200:1::/64' }), log });
  assert.deepEqual(await priv.attachments(app, manifest, 'worker'), [{ name: 'pier-private-org_1--pr-7', aliases: [], subnet: '10.210.1.0/24', ipv6Subnet: 'fd70:6965:7200:1::/64' }]);
});

test('describe on a swarm says where offered ports are enforced: on the nodes whose agent watches its engine, naming the others and why', () => {
  const none = swarmPrivateLimits({});
  assert.match(none, /Swarm's DNS answers the names with A records of running tasks only; the AAAA and A records of ready instances/);
  assert.match(none, /not enforced, and tasks have no IPv6 address: no node agent runs with --docker-host, so every port of a task there is open/);
  const some = swarmPrivateLimits({ '10.0.0.1': { enforced: 3, problem: null }, '10.0.0.2': null, '10.0.0.3': 'unreachable' });
  assert.match(some, /enforced, and IPv6 addresses given, in the tasks on 10\.0\.0\.1; not on 10\.0\.0\.2 \(its agent runs without --docker-host\), 10\.0\.0\.3 \(its agent does not answer\), nor on any node without an agent/);
  assert.doesNotMatch(some, /last failures/);
  const failing = swarmPrivateLimits({ '10.0.0.1': { enforced: 0, problem: 'container abc: iptables-restore exited with 1' } });
  assert.match(failing, /enforced, and IPv6 addresses given, in the tasks on 10\.0\.0\.1; not on any node without an agent.*; last failures: 10\.0\.0\.1: container abc: iptables-restore exited with 1$/);
  // The IPv6 address each agent gave its node's tasks, merged for describe; unreachable or plain agents add none.
  const state = swarmPrivateState({ '10.0.0.1': { enforced: 1, problem: null, ipv6: { c1: 'fd00::a00:2' } }, '10.0.0.2': { enforced: 1, problem: null, ipv6: { c2: 'fd00::a00:3' } }, '10.0.0.3': 'unreachable', '10.0.0.4': null });
  assert.deepEqual(state.taskIpv6, { c1: 'fd00::a00:2', c2: 'fd00::a00:3' });
  assert.equal(state.limits, swarmPrivateLimits({ '10.0.0.1': { enforced: 1, problem: null }, '10.0.0.2': { enforced: 1, problem: null }, '10.0.0.3': 'unreachable', '10.0.0.4': null }));
});
