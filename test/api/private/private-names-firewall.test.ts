// The order of names and firewall on the real engine and the host's real firewall (root,
// iptables; skipped without): an instance is given its names only at addresses the installation's
// chain admits on its offered port, and no instance that answers its names is left out of a
// rewrite. Checked at every join and leave the names round asks the engine for, through a
// runtime that reads the real chain before passing each call to the real Docker runtime: the first
// round of a restarted server (which knows no instance before it) with instances leaving their
// names one by one, and an instance taken off the network behind Pier's back, which joins again
// at new addresses. (The rows come from the in-memory control plane; the containers are real.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { and, eq, inArray } from 'drizzle-orm';
import { instances } from '../../../db/schema/index.js';
import { iptablesUsable } from '../../support/firewall-chains.js';
import { randomId } from '../../../api/ids.js';
import { bridgeName } from '../../../api/private/host-routes.js';
import { createPrivateFirewall, removePrivateFirewall } from '../../../api/private/private-firewall.js';
import { createPrivateNames } from '../../../api/private/private-names.js';
import { createPrivateNetworks } from '../../../api/private/private-networks.js';
import { parsePrivatePrefixes, randomUlaPrefix } from '../../../api/private/private-prefixes.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import type { JoinOptions, Runtime } from '../../../api/runtime/runtime.js';
import { createControlPlane, IMAGE } from '../../support/memory-control-plane.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';

const exec = promisify(execFile);


test('names move only once the chain admits the instance: a restarted server rewrites it with every instance first, and an instance joining at new addresses is admitted before it is named', async (t) => {
  if (!(await requireDocker(t)) || !(await iptablesUsable(t))) return;
  const image = await ensureBusyboxImage();
  const cp = await createControlPlane(t, { health: false });
  const manifest = ['app = "db"', `image = "${IMAGE}"`, '[processes.web]', 'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]', 'count = 3', '[[private]]', 'process = "web"', 'ports = [8080]'].join('\n');
  const { app } = await cp.deploy(manifest);
  const rowsOf = () => cp.db.select().from(instances).where(and(eq(instances.appId, app.id), inArray(instances.observedState, ['starting', 'running'])));
  await cp.converge(app.id, async () => (await rowsOf()).length === 3, 'three running instances');

  const log = cp.logs.log;
  const installationId = `inst_${randomId(12)}`;
  const firewall = createPrivateFirewall({ installationId, log });
  t.after(() => removePrivateFirewall(firewall.chain));
  const docker = createDockerRuntime({ log });
  const networks = createPrivateNetworks({
    db: cp.db,
    runtime: docker,
    prefixes: parsePrivatePrefixes(randomUlaPrefix(), undefined),
    log,
    installationId,
    onCreated: (info) => firewall.close({ bridge: bridgeName(info.id) }),
  });
  const network = (await networks.networkFor({ orgId: cp.orgId })).name;
  const containers: string[] = [];
  t.after(async () => {
    if (containers.length) await exec('docker', ['rm', '-f', ...containers]).catch(() => undefined);
    // Tried a few times: the engine may still be taking a removed container's endpoint off it.
    for (let i = 0; i < 5; i++) {
      if (await exec('docker', ['network', 'rm', network]).then(() => true, () => false)) break;
      if (await exec('docker', ['network', 'inspect', network]).then(() => false, () => true)) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
  });
  // The real containers of the rows, started on the network without names (as the reconciler does).
  for (const row of await rowsOf()) {
    const { stdout } = await exec('docker', ['run', '-d', '--label', 'dev.pier.test=private-names-firewall', '--network', network, image, 'nc', '-ll', '-p', '8080', '-e', 'cat']);
    const id = stdout.trim();
    containers.push(id);
    await cp.db.update(instances).set({ containerId: id, health: 'healthy' }).where(eq(instances.id, row.id));
  }

  const chain = async () => (await exec('iptables', ['-w', '5', '-S', firewall.chain])).stdout + (await exec('ip6tables', ['-w', '5', '-S', firewall.chain])).stdout;
  const admits = (rules: string, ipv4: string | null, ipv6: string | null) => {
    const lines = rules.split('\n').filter((l) => /-p tcp .*--dport 8080 -j RETURN$/.test(l));
    return ipv4 !== null && ipv6 !== null && lines.some((l) => l.includes(` -d ${ipv4}/32 `)) && lines.some((l) => l.includes(` -d ${ipv6}/128 `));
  };
  const violations: string[] = [];
  let calls = 0;
  /** Before the engine is asked to move `id`: every other named instance, and `id` itself when it is being named, admitted. */
  const check = async (what: string, id: string, options?: JoinOptions) => {
    calls++;
    const rules = await chain();
    for (const other of containers) {
      if (other === id) continue;
      const endpoint = (await docker.inspect(other))?.endpoints?.[network];
      if (endpoint && endpoint.aliases.length > 0 && !admits(rules, endpoint.ipv4, endpoint.ipv6)) violations.push(`${what} ${id.slice(0, 12)}: ${other.slice(0, 12)} answers its names at ${endpoint.ipv4} / ${endpoint.ipv6}, not admitted`);
    }
    if (options?.aliases?.length && !admits(rules, options.ipv4 ?? null, options.ipv6 ?? null)) violations.push(`${what} ${id.slice(0, 12)}: named at ${options.ipv4 ?? 'new addresses'} / ${options.ipv6 ?? 'new addresses'}, not admitted`);
  };
  const observed: Runtime = {
    ...docker,
    async connectNetwork(id, name, options) {
      await check('join', id, options);
      return docker.connectNetwork(id, name, options);
    },
    async disconnectNetwork(id, name) {
      await check('leave', id);
      return docker.disconnectNetwork(id, name);
    },
  };
  /** A server's names service, new (as after a restart: it knows no instance yet). */
  const restart = () => createPrivateNames({ db: cp.db, runtime: observed, networks, nodeId: 'node_local', log, firewall });
  const named = async () => Promise.all(containers.map(async (id) => (await docker.inspect(id))?.endpoints?.[network]?.aliases.length ?? 0));

  // The first server: every instance is named.
  await restart().sync();
  assert.deepEqual(await named(), [2, 2, 2], 'web.db.internal and db.internal on each');
  assert.deepEqual(violations, []);

  // A restart during which the instances stopped being ready: they leave their names one by one,
  // and the rewrite made before the first of them moves keeps the others (still named) admitted.
  await cp.db.update(instances).set({ health: 'starting' }).where(eq(instances.appId, app.id));
  const before = calls;
  await restart().sync();
  assert.equal(calls - before, 6, 'each left and joined again');
  assert.deepEqual(violations, []);
  assert.deepEqual(await named(), [0, 0, 0]);

  // Ready again, and one of them taken off the network behind Pier's back: a restarted server
  // joins it again at new addresses, admitted before it is named; a peer reaches it on the offered port.
  await cp.db.update(instances).set({ health: 'healthy' }).where(eq(instances.appId, app.id));
  const second = containers[1] as string;
  await exec('docker', ['network', 'disconnect', network, second]);
  await restart().sync();
  assert.deepEqual(violations, []);
  assert.deepEqual(await named(), [2, 2, 2]);
  const peer = containers.find((c) => c !== second) as string;
  const secondV4 = (await docker.inspect(second))?.endpoints?.[network]?.ipv4;
  const { stdout } = await exec('docker', ['exec', peer, 'sh', '-c', `echo hello | nc -w 3 ${secondV4} 8080`]);
  assert.equal(stdout.trim(), 'hello', 'admitted on the offered port');
});
