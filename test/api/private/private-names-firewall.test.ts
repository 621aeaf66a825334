// The order of names and firewall on the real engine and the host's real firewall (root,
// iptables; skipped without): an instance is given its names only at addresses the installation's
// chain admits on its offered port, and no instance that answers its names is left out of a
// rewrite. Checked at every join and leave the names round asks the engine for, through a
// runtime that reads the real chain before passing each call to the real Docker runtime: the first
// round of a restarted server (which knows no instance before it) with instances leaving their
// names one by one, and an instance taken off the network behind Pier's back, which joins again
// at new addresses. And an instance the engine cannot be asked about in a restarted server's first
// round stays admitted at the addresses its row keeps, recorded once. (The rows come from the
// in-memory control plane; the containers are real.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { and, eq, inArray } from 'drizzle-orm';
import { events, instances } from '../../../db/schema/index.js';
import { iptablesUsable } from '../../support/firewall-chains.js';
import { randomId } from '../../../api/ids.js';
import { bridgeName } from '../../../api/private/host-routes.js';
import { createPrivateFirewall, removePrivateFirewall } from '../../../api/private/private-firewall.js';
import { createPrivateNames } from '../../../api/private/private-names.js';
import { PierError } from '../../../api/pier-error.js';
import { createPrivateNetworks } from '../../../api/private/private-networks.js';
import { parsePrivatePrefixes, randomUlaPrefix } from '../../../api/private/private-prefixes.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import type { JoinOptions, Runtime } from '../../../api/runtime/runtime.js';
import { createControlPlane, IMAGE } from '../../support/memory-control-plane.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';

const exec = promisify(execFile);

/**
 * `count` real containers of an app offering port 8080 on its private network, started on it
 * without names (as the reconciler does), with the installation's chain; skipped without Docker
 * and root. `admits` says whether the chain lets 8080 through to both addresses.
 */
async function setup(t: TestContext, count: number) {
  if (!(await requireDocker(t)) || !(await iptablesUsable(t))) return null;
  const image = await ensureBusyboxImage();
  const cp = await createControlPlane(t, { health: false });
  const manifest = ['app = "db"', `image = "${IMAGE}"`, '[processes.web]', 'cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]', `count = ${count}`, '[[private]]', 'process = "web"', 'ports = [8080]'].join('\n');
  const { app } = await cp.deploy(manifest);
  const rowsOf = () => cp.db.select().from(instances).where(and(eq(instances.appId, app.id), inArray(instances.observedState, ['starting', 'running'])));
  await cp.converge(app.id, async () => (await rowsOf()).length === count, `${count} running instances`);

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
  /** The instance (row) of each container. */
  const instanceOf = new Map<string, string>();
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
    instanceOf.set(id, row.id);
    await cp.db.update(instances).set({ containerId: id, health: 'healthy' }).where(eq(instances.id, row.id));
  }

  const chain = async () => (await exec('iptables', ['-w', '5', '-S', firewall.chain])).stdout + (await exec('ip6tables', ['-w', '5', '-S', firewall.chain])).stdout;
  const admits = (rules: string, ipv4: string | null, ipv6: string | null) => {
    const lines = rules.split('\n').filter((l) => /-p tcp .*--dport 8080 -j RETURN$/.test(l));
    return ipv4 !== null && ipv6 !== null && lines.some((l) => l.includes(` -d ${ipv4}/32 `)) && lines.some((l) => l.includes(` -d ${ipv6}/128 `));
  };
  return { cp, app, log, firewall, docker, networks, network, containers, instanceOf, chain, admits };
}

test('names move only once the chain admits the instance: a restarted server rewrites it with every instance first, and an instance joining at new addresses is admitted before it is named', async (t) => {
  const s = await setup(t, 3);
  if (s === null) return;
  const { cp, app, log, firewall, docker, networks, network, containers, chain, admits } = s;
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

test('an instance the engine cannot be asked about in a restarted server\'s first round stays admitted at the addresses its row keeps, recorded once', async (t) => {
  const s = await setup(t, 2);
  if (s === null) return;
  const { cp, log, firewall, docker, networks, network, containers, instanceOf, chain, admits } = s;
  const [peer, flaky] = containers as [string, string];
  const flakyInstance = instanceOf.get(flaky) as string;
  let failures = 0;
  /** The engine, whose inspect of `flaky` fails while `failures` lasts. */
  const runtime: Runtime = {
    ...docker,
    async inspect(id) {
      if (id === flaky && failures > 0) {
        failures--;
        throw new PierError('E_RUNTIME', 'the engine did not answer in time');
      }
      return docker.inspect(id);
    },
  };
  const server = () => createPrivateNames({ db: cp.db, runtime, networks, nodeId: 'node_local', log, firewall, events: cp.events });
  const reaches = async (target: string) => {
    const address = (await docker.inspect(target))?.endpoints?.[network]?.ipv4;
    const { stdout } = await exec('docker', ['exec', peer, 'sh', '-c', `echo hello | nc -w 3 ${address} 8080`]).catch((err: Error) => ({ stdout: `refused: ${err.message}` }));
    return stdout.trim();
  };

  // The first server names both, and keeps where each is in its row.
  await server().sync();
  const endpoint = (await docker.inspect(flaky))?.endpoints?.[network];
  assert.ok(endpoint && endpoint.aliases.length === 2, 'named');
  const [row] = await cp.db.select().from(instances).where(eq(instances.id, flakyInstance));
  assert.deepEqual(row?.privateEndpoint, { container: flaky, network, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6 });
  assert.equal(await reaches(flaky), 'hello');

  // A server started after it, whose engine cannot be asked about that instance in its first two
  // rounds: the chain it writes keeps admitting the instance's offered port at those addresses.
  failures = 2;
  const restarted = server();
  t.after(() => restarted.close());
  await restarted.sync();
  assert.equal(failures, 1, 'the first round asked');
  assert.ok(admits(await chain(), endpoint.ipv4, endpoint.ipv6), 'still admitted after a failed first look');
  assert.equal(await reaches(flaky), 'hello', 'a peer reaches its offered port');
  await restarted.sync();
  assert.equal(failures, 0);
  assert.ok(admits(await chain(), endpoint.ipv4, endpoint.ipv6));

  // Logged and recorded once, though two rounds failed; the next round finds it again.
  const recorded = await cp.db.select().from(events).where(and(eq(events.instanceId, flakyInstance), eq(events.type, 'instance.private-inspect-failed')));
  assert.equal(recorded.length, 1);
  assert.equal(recorded[0]!.reason, 'E_RUNTIME');
  assert.deepEqual(recorded[0]!.data, { error: 'the engine did not answer in time', network, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6 });
  assert.match(recorded[0]!.message, /stay admitted on its offered ports/);
  assert.equal(cp.logs.messages('instance not looked at on its private network; trying again next round').filter((l) => l.instance === flakyInstance).length, 1);
  await restarted.sync();
  assert.equal(cp.logs.messages('instance looked at again on its private network').filter((l) => l.instance === flakyInstance).length, 1);
  assert.ok(admits(await chain(), endpoint.ipv4, endpoint.ipv6));
  assert.equal(await reaches(flaky), 'hello');
});
