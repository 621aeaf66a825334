// Private networks on the in-memory runtime with a real database: one per organisation, with
// disjoint subnets, reused (not made again) by a restarted server; and the names that follow an
// instance's readiness: ready instances answer PROCESS.APP.internal and APP.internal, an
// unhealthy or draining one leaves them and keeps its addresses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { instances } from '../../../db/schema/index.js';
import { createPrivateNames } from '../../../api/private/private-names.js';
import { createPrivateNetworks } from '../../../api/private/private-networks.js';
import { parsePrivatePrefixes } from '../../../api/private/private-prefixes.js';
import { createMemoryRuntime } from '../../../api/runtime/memory-runtime.js';
import { captureLog } from '../../support/log-capture.js';
import { createControlPlane, IMAGE } from '../../support/memory-control-plane.js';
import { createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';

const prefixes = parsePrivatePrefixes(undefined, undefined);

test('each organisation gets its own dual-stack network with disjoint subnets; a restarted server reuses it', async (t) => {
  const { db } = await createTestDb(t);
  const runtime = createMemoryRuntime();
  const log = captureLog('debug').log;
  const [a, b] = [await createOrg(db, 'a'), await createOrg(db, 'b')];
  // Each network made on the engine is handed to onCreated (the firewall closes it) before
  // networkFor resolves, so before any instance can join it; one found again is not.
  const closed: string[] = [];
  const onCreated = async (info: { name: string; created: boolean }) => {
    assert.ok(info.created);
    closed.push(info.name);
    return null;
  };
  const networks = createPrivateNetworks({ db, runtime, prefixes, log, onCreated });
  const [na, nb] = await Promise.all([networks.networkFor({ orgId: a }), networks.networkFor({ orgId: b })]);
  assert.deepEqual(closed.sort(), [na.name, nb.name].sort());
  assert.notEqual(na.name, nb.name);
  assert.notEqual(na.ipv6Subnet, nb.ipv6Subnet);
  assert.notEqual(na.ipv4Subnet, nb.ipv4Subnet);
  assert.deepEqual((await networks.networkFor({ orgId: a })).slot, na.slot, 'asked again: the same network');
  const onEngine = await runtime.listNetworks({ 'dev.pier.private': 'true' });
  assert.deepEqual(onEngine.map((n) => [n.name, n.ipv6Subnet, n.subnet, n.labels['dev.pier.private.key']]).sort(), [
    [na.name, na.ipv6Subnet, na.ipv4Subnet, a],
    [nb.name, nb.ipv6Subnet, nb.ipv4Subnet, b],
  ].sort());

  // A restart: a new server process on the same database and engine finds them by name.
  const again = createPrivateNetworks({ db, runtime, prefixes, log, onCreated });
  assert.deepEqual((await again.ensureAll()).map((r) => r.name).sort(), [na.name, nb.name].sort());
  assert.equal((await again.networkFor({ orgId: a })).name, na.name);
  assert.equal((await runtime.listNetworks({ 'dev.pier.private': 'true' })).length, 2, 'none made twice');
  assert.equal(closed.length, 2, 'none closed twice');
});

test('ready instances answer their names; an unhealthy or draining one leaves them, keeping its addresses', async (t) => {
  // No health monitor: the test sets health as the monitor would, so nothing sets it back under it.
  const cp = await createControlPlane(t, { health: false });
  const manifest = [
    'app = "db"',
    `image = "${IMAGE}"`,
    '[processes.web]',
    'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]',
    'count = 2',
    '[processes.worker]',
    'cmd = ["sleep", "3600"]',
    '[[private]]',
    'process = "web"',
    'ports = [8080]',
  ].join('\n');
  const { app } = await cp.deploy(manifest);
  const networks = createPrivateNetworks({ db: cp.db, runtime: cp.runtime, prefixes, log: cp.logs.log });
  const names = createPrivateNames({ db: cp.db, runtime: cp.runtime, networks, nodeId: 'node_local', log: cp.logs.log });
  t.after(() => names.close());
  const network = (await networks.networkFor({ orgId: cp.orgId })).name;
  const endpoints = async () => {
    const rows = await cp.db.select().from(instances).where(eq(instances.appId, app.id));
    const out = new Map<string, { process: string; aliases: string[]; ipv4: string | null; ipv6: string | null }>();
    for (const r of rows) {
      const e = r.containerId ? (await cp.runtime.inspect(r.containerId))?.endpoints?.[network] : undefined;
      if (e) out.set(r.id, { process: r.process, ...e });
    }
    return out;
  };
  await cp.converge(app.id, async () => (await cp.db.select().from(instances).where(eq(instances.appId, app.id))).filter((r) => r.observedState === 'running').length === 3, 'three running instances');
  // The offered port gives web an implicit readiness check: not ready (no names) until it passes.
  await names.sync();
  assert.deepEqual([...(await endpoints()).values()].map((e) => e.aliases), [[], [], []], 'no names before the check passes');
  await cp.db.update(instances).set({ health: 'healthy' }).where(eq(instances.process, 'web'));
  await names.sync();
  let seen = await endpoints();
  assert.equal(seen.size, 3, 'every instance is on the network');
  for (const e of seen.values()) {
    assert.deepEqual(e.aliases, e.process === 'web' ? ['web.db.internal', 'db.internal'] : [], `${e.process} offers ${e.process === 'web' ? 'ports' : 'nothing'}`);
    assert.match(e.ipv6 ?? '', /^fd70:6965:7200:/);
  }
  const [first, second] = [...seen].filter(([, e]) => e.process === 'web');
  assert.ok(first && second);

  await cp.db.update(instances).set({ health: 'unhealthy' }).where(eq(instances.id, first[0]));
  await cp.db.update(instances).set({ desiredState: 'stopped', drainUntil: new Date(Date.now() + 60_000) }).where(eq(instances.id, second[0]));
  await names.sync();
  seen = await endpoints();
  for (const [id, before] of [first, second]) {
    assert.deepEqual(seen.get(id), { ...before, aliases: [] }, `${id} left the names at the same addresses`);
  }
});
