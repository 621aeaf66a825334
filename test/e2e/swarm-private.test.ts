// Private networking on a two-node swarm (test/support/swarm-cluster.ts): `pier server --runtime
// swarm` makes the environment's private network as an overlay on the manager, and each service
// joins it with its names. A worker task on each node resolves web.api.internal to both web tasks
// (one per node) and reaches each, so each worker reaches the web task on the other node, by
// address and by name. Swarm on Engine 20.10 gives tasks no IPv6 address of their own and no AAAA
// record (docs/several-machines.md): an AAAA query is answered at once, empty.
// Each node runs `pier agent --docker-host` (its engine): the web tasks take connections from the
// overlay on their offered port (8080) only; 9090, where they also listen, is refused at once, on
// the same node and across nodes; and each task gets the environment's PREFIX::IPv4 from its
// node's agent, so each worker reaches the other node's web task over IPv6 too (offered port only).
// The API server pushes the ready tasks' names and addresses to the agents, which write them into
// each task's hosts file: `ping6 web.api.internal` goes to a web task's IPv6 address. `pier describe app` lists the tasks' private addresses, and says
// what is enforced where and what is not. A preview
// environment's worker, on an overlay of its own, neither resolves nor reaches production's web;
// once the preview is destroyed its overlay is removed from the swarm (kept while its service
// uses it), production's stays. A scaled-down task leaves the name. Every wait is bounded; the
// cluster cleans up after itself.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { randomUlaPrefix } from '../../api/private/private-prefixes.js';
import { createSwarmOverlays } from '../../api/runtime/swarm-overlays.js';
import { tempRoot } from '../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { startNodeAgent } from '../support/node-agent.js';
import { runPier, startPierServer } from '../support/pier-process.js';
import { requireNamespaces, startSwarmCluster, type SwarmNode } from '../support/swarm-cluster.js';

const IMAGE = 'pier-test/busybox:1';

const API = `
app = "api"
image = "${IMAGE}"

[processes.web]
cmd = ["sh", "-c", "mkdir -p /www; hostname > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & httpd -f -p 9090 -h /www & wait"]
count = 2

[processes.web.placement]
spread = "node"

[[private]]
process = "web"
ports = [8080]
`;

const CLI = `
app = "cli"
image = "${IMAGE}"

[processes.worker]
cmd = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
count = 2

[processes.worker.placement]
spread = "node"
`;

async function until<T>(what: string, check: () => Promise<T | null>, tries = 200): Promise<T> {
  let last: unknown = null;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await check();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    await delay(300);
  }
  throw new Error(`gave up waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

/** The running task container of `service` on `node`, through the node's own engine. */
/** A running task of `service` on `node`, named without the app's tag (pier-api-v1-web for pier-api-TAG-v1-web). */
async function taskOn(node: SwarmNode, service: string): Promise<{ id: string; hostname: string } | null> {
  const listed = (await node.docker(['ps', '--format', '{{.ID}} {{.Label "com.docker.swarm.service.name"}}'])).split('\n').filter(Boolean);
  const id = listed.map((l) => l.split(' ')).find(([, name]) => name?.replace(/^(pier-[a-z0-9-]+?)-[0-9a-f]{6}-v/, '$1-v') === service)?.[0];
  if (!id) return null;
  return { id, hostname: (await node.docker(['inspect', '--format', '{{.Config.Hostname}}', id])).trim() };
}

async function sh(node: SwarmNode, id: string, line: string): Promise<string> {
  return node.docker(['exec', id, 'sh', '-c', line]);
}

/** The addresses a name resolves to in a task, through the engine's DNS. */
async function lookup(node: SwarmNode, id: string, name: string, type: 'A' | 'AAAA'): Promise<string[]> {
  // timeout(1): an unanswered query (forwarded upstream) must fail the test, not stall it.
  const out = await sh(node, id, `timeout 4 nslookup -type=${type} ${name} 127.0.0.11 2>&1; echo "rc=$?"`);
  assert.doesNotMatch(out, /timed out|rc=143/, `${type} ${name} was not answered: ${out}`);
  return [...out.matchAll(/^Address: ([0-9a-f.:]+)$/gm)].map((m) => m[1] as string).filter((a) => a !== '127.0.0.11');
}

test('on a swarm, a worker on each node resolves and reaches web.api.internal on the other node, by IPv4 and by the IPv6 address its node agent gave, on its offered port only (the node agents enforce it); Swarm\'s DNS answers AAAA empty, the hosts file the agents write has AAAA and A of ready tasks; a preview cannot resolve or reach it; a scaled-down task leaves the name', async (t) => {
  if (!(await requireDocker(t)) || !(await requireNamespaces(t))) return;
  if (process.env.DATABASE_URL && process.env.PIER_SWARM_E2E_POSTGRES !== '1') {
    t.skip('the swarm runs on the embedded-database pass only (CI time)');
    return;
  }
  await ensureBusyboxImage(IMAGE);
  const cluster = await startSwarmCluster(t, { images: [IMAGE] });
  // An agent per node, watching its node's engine (run on this machine: the nodes' engines share it).
  const agent1 = await startNodeAgent(t, await tempRoot(t), ['--docker-host', cluster.manager.host]);
  const agent2 = await startNodeAgent(t, await tempRoot(t), ['--docker-host', cluster.worker.host], { token: agent1.token });
  const server = await startPierServer(
    t,
    {
      DOCKER_HOST: cluster.manager.host,
      PIER_RUNTIME: 'swarm',
      PIER_SWARM_NODE_ENGINES: `${cluster.worker.address}=${cluster.worker.host}`,
      PIER_EDGE_IPV4: '0.0.0.0',
      PIER_EDGE_IPV6: 'off',
      // Inside the nodes' namespaces only; clear of the nodes' own pools (198.19.128/20, .240/24, .244/22).
      PIER_PRIVATE_IPV4: `198.19.${160 + 16 * randomInt(0, 4)}.0/20`,
      PIER_PRIVATE_IPV6: randomUlaPrefix(),
      PIER_REAP_INTERVAL: '1s',
      PIER_NODE_AGENTS: `${cluster.manager.address}=${agent1.url},${cluster.worker.address}=${agent2.url}`,
      PIER_NODE_AGENT_TOKEN_FILE: agent1.tokenFile,
    },
    { args: ['--role', 'api', '--api-listen', `${cluster.hostAddress}:0`] },
  );
  for (const [app, text] of [['api', API], ['cli', CLI]] as const) {
    const file = join(server.dir, `${app}.toml`);
    await writeFile(file, text);
    const r = await runPier(['deploy', '-c', file, '--wait', '90'], server.env);
    assert.equal(r.code, 0, `deploy ${app}: ${r.stderr}\n${server.stderr().slice(-3000)}`);
  }
  const serviceState = async () => `${await cluster.manager.docker(['service', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}', ...(await cluster.manager.docker(['service', 'ls', '-q'])).split('\n').filter(Boolean)]).catch((e: Error) => e.message)}\n${server.stderr().slice(-3000)}`;
  const [n1, n2] = cluster.nodes as [SwarmNode, SwarmNode];
  const webs = await until('a web task on each node', async () => {
    const a = await taskOn(n1, 'pier-api-v1-web');
    const b = await taskOn(n2, 'pier-api-v1-web');
    return a && b ? [a, b] : null;
  }).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await serviceState()}`);
  });
  const workers = await until('a worker task on each node', async () => {
    const a = await taskOn(n1, 'pier-cli-v1-worker');
    const b = await taskOn(n2, 'pier-cli-v1-worker');
    return a && b ? [a, b] : null;
  });
  const overlay = (await cluster.manager.docker(['network', 'ls', '--filter', 'label=dev.pier.private=true', '--format', '{{.Name}} {{.Driver}}'])).trim();
  assert.match(overlay, /^pier-private-\S+ overlay$/, 'one overlay, made by Pier on the manager');

  // Each agent has written the chain of both its node's tasks (a web and a worker).
  for (const agent of [agent1, agent2]) {
    await until('the agent to enforce its node\'s two tasks', async () => {
      const r = await fetch(new URL('/v1/root', agent.url), { headers: { authorization: `Bearer ${agent.token}` } });
      const info = (await r.json()) as { offeredPorts: { enforced: number } | null };
      return (info.offeredPorts?.enforced ?? 0) >= 2 ? true : null;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${agent.stderr().slice(-2000)}`);
    });
  }
  // The IPv6 address each agent gave its node's tasks on the overlay, by short container id.
  const taskIpv6 = new Map<string, string>();
  for (const agent of [agent1, agent2]) {
    const r = await fetch(new URL('/v1/root', agent.url), { headers: { authorization: `Bearer ${agent.token}` } });
    const info = (await r.json()) as { offeredPorts: { ipv6?: Record<string, string> } | null };
    for (const [id, address] of Object.entries(info.offeredPorts?.ipv6 ?? {})) taskIpv6.set(id.slice(0, 12), address);
  }
  assert.ok(webs.every((w) => taskIpv6.has(w.id.slice(0, 12))), `each web task got IPv6 from its agent: ${JSON.stringify([...taskIpv6])}`);
  const sinceStart = [agent1, agent2].flatMap((a) => [...a.stderr().matchAll(/"msSinceStart":(\d+)/g)].map((m) => Number(m[1])));
  t.diagnostic(`offered ports enforced after a task's start (ms, as Docker dates it): ${sinceStart.join(' ')}`);

  let resolved: string[] = [];
  for (const [i, node] of [n1, n2].entries()) {
    const worker = workers[i] as { id: string };
    const other = webs[1 - i] as { id: string; hostname: string };
    const addresses = await until(`both web tasks in web.api.internal from node ${i + 1}`, async () => {
      const a = await lookup(node, worker.id, 'web.api.internal', 'A');
      return a.length === 2 ? a : null;
    });
    resolved = [...addresses].sort();
    assert.deepEqual((await lookup(node, worker.id, 'api.internal', 'A')).sort(), resolved, 'APP.internal: the same tasks');
    assert.deepEqual(await lookup(node, worker.id, 'web.api.internal', 'AAAA'), [], 'no AAAA on a swarm overlay, answered at once');
    // Each address answers with its task's hostname: one of them is the web task on the other node.
    const reached = new Set<string>();
    for (const address of addresses) reached.add((await sh(node, worker.id, `timeout 5 wget -q -O- http://${address}:8080/`)).trim());
    assert.deepEqual([...reached].sort(), webs.map((w) => w.hostname).sort(), `node ${i + 1}'s worker reaches both web tasks`);
    assert.ok(reached.has(other.hostname), `node ${i + 1}'s worker reaches the web task on the other node`);
    const byName = (await sh(node, worker.id, 'timeout 5 wget -q -O- http://web.api.internal:8080/')).trim();
    assert.ok(webs.some((w) => w.hostname === byName), `by name: ${byName}`);
    // Offered ports only: 9090 (listening, not offered) is refused at once, from this node and the other.
    for (const address of addresses) {
      const r = await sh(node, worker.id, `timeout 5 wget -q -O- http://${address}:9090/ 2>&1; echo "rc=$?"`);
      assert.match(r, /refused|reset/i, `node ${i + 1}'s worker to ${address}:9090, not offered: ${r}`);
      assert.doesNotMatch(r, /rc=0/);
    }
    // IPv6 across nodes, at the address the agent gave: the offered port answers, 9090 is refused.
    const otherV6 = taskIpv6.get(other.id.slice(0, 12)) as string;
    assert.equal((await sh(node, worker.id, `timeout 5 wget -q -O- http://[${otherV6}]:8080/`)).trim(), other.hostname, `node ${i + 1}'s worker reaches the other node's web task at ${otherV6}`);
    const closed6 = await sh(node, worker.id, `timeout 5 wget -q -O- http://[${otherV6}]:9090/ 2>&1; echo "rc=$?"`);
    assert.match(closed6, /refused|reset/i, `node ${i + 1}'s worker to [${otherV6}]:9090, not offered: ${closed6}`);
    assert.doesNotMatch(closed6, /rc=0/);
    // Told in its environment, as on one engine: the family to use on a swarm's overlay (its names have A records only).
    assert.equal((await sh(node, worker.id, 'echo "$PIER_PRIVATE_FAMILY"')).trim(), 'ipv4');
  }

  // `pier describe app` lists each task's private address and names, and says what is enforced where.
  type Described = { private: { limits?: string; instances: { ipv4: string | null; ipv6: string | null; names: string[] }[] } };
  const described = await until('describe to list both web tasks on the overlay', async () => {
    const r = await runPier(['describe', 'app', 'api', '--json'], server.env);
    const v = JSON.parse(r.stdout) as Described;
    return v.private.instances.length === 2 ? v : null;
  });
  assert.deepEqual(described.private.instances.map((i) => i.ipv4).sort(), resolved);
  assert.deepEqual(described.private.instances.map((i) => i.ipv6).sort(), webs.map((w) => taskIpv6.get(w.id.slice(0, 12))).sort(), 'the IPv6 addresses the agents gave');
  assert.ok(described.private.instances.every((i) => i.names.includes('web.api.internal')), JSON.stringify(described.private.instances));
  assert.match(described.private.limits ?? '', new RegExp(`offered ports \\(\\[\\[private\\]\\] ports\\) are enforced, and IPv6 addresses given, in the tasks on ${cluster.manager.address.replace(/\./g, '\\.')}, ${cluster.worker.address.replace(/\./g, '\\.')}; not on any node without an agent`));
  assert.match(described.private.limits ?? '', /Swarm's DNS answers the names with A records of running tasks only; the AAAA and A records of ready instances/);
  // AAAA names, following Pier's checks: the server pushes the ready instances' names and addresses
  // to the agents, which write them into each task's hosts file (getaddrinfo reads it first).
  const webV6 = webs.map((w) => taskIpv6.get(w.id.slice(0, 12)) as string);
  for (const [i, node] of [n1, n2].entries()) {
    const worker = workers[i] as { id: string };
    const hosts = await until(`node ${i + 1}'s worker's hosts file to name both web tasks by IPv6 and IPv4`, async () => {
      const text = await sh(node, worker.id, 'cat /etc/hosts');
      return [...webV6, ...resolved].every((a) => new RegExp(`^${a.replace(/\./g, '\\.')}\\tapi\\.internal web\\.api\\.internal$`, 'm').test(text)) ? text : null;
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${server.stderr().split('\n').filter((l) => /swarm-names|private names/.test(l)).slice(-6).join('\n')}`);
    });
    assert.match(hosts, /localhost/, `Docker's lines stay: ${hosts}`);
    const ping = await sh(node, worker.id, 'timeout 5 ping6 -c 1 -W 2 web.api.internal 2>&1; echo "rc=$?"');
    const target = /PING web\.api\.internal \(([0-9a-f:]+)\)/.exec(ping)?.[1];
    assert.ok(target && webV6.includes(target) && /rc=0/.test(ping), `web.api.internal by AAAA from node ${i + 1}: ${ping}`);
  }

  // `pier doctor` with the server's configuration asks the same agents: offered ports ok.
  const doctor = await runPier(['doctor', '--json'], server.env);
  const offered = (JSON.parse(doctor.stdout) as { checks: { name: string; status: string; message: string }[] }).checks.find((c) => c.name === 'offered ports');
  assert.equal(offered?.status, 'ok', `${JSON.stringify(offered)}\n${doctor.stderr}`);
  assert.match(offered?.message ?? '', new RegExp(`enforced, and IPv6 addresses given, in the tasks on ${cluster.manager.address.replace(/\./g, '\\.')}`));

  // A preview environment's worker is on an overlay of its own: production's names do not resolve
  // there and production's addresses answer on no port. (Its own app name: service names do not
  // carry the environment.)
  const previewFile = join(server.dir, 'pcli.toml');
  await writeFile(previewFile, CLI.replace('app = "cli"', 'app = "pcli"').replace('count = 2', 'count = 1'));
  const pr = await runPier(['deploy', '-c', previewFile, '--wait', '90'], { ...server.env, PIER_ENV: 'pr-7' });
  assert.equal(pr.code, 0, pr.stderr);
  const [pnode, ptask] = await until('the preview worker task', async () => {
    for (const node of [n1, n2]) {
      const task = await taskOn(node, 'pier-pcli-v1-worker');
      if (task) return [node, task] as const;
    }
    return null;
  });
  const pnet = (await pnode.docker(['inspect', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', ptask.id])).trim();
  const pnets = pnet.split(' ').filter((n) => n.startsWith('pier-private-'));
  assert.ok(pnets.length === 1 && pnets[0] !== overlay.split(' ')[0], `the preview's own overlay: ${pnet}\n${server.stderr().split('\n').filter((l) => /private|overlay|network/i.test(l)).slice(-8).join('\n')}`);
  const unresolved = await sh(pnode, ptask.id, 'timeout 4 nslookup -type=A web.api.internal 127.0.0.11 2>&1; true');
  assert.doesNotMatch(unresolved, /Address: 198\./, `the preview resolved production's name: ${unresolved}`);
  for (const address of [...resolved, ...webs.map((w) => `[${taskIpv6.get(w.id.slice(0, 12))}]`)]) {
    const r = await sh(pnode, ptask.id, `timeout 3 wget -q -O- http://${address}:8080/ 2>&1; echo "rc=$?"`);
    assert.doesNotMatch(r, /rc=0/, `the preview reached production's ${address}: ${r}`);
  }

  // The preview destroyed: its overlay is removed from the swarm once its service is gone (the
  // reaper, every second here), and production's stays. While a service still names it, the
  // manager refuses and the removal says "not yet" (false), for a later pass.
  const previewOverlay = pnets[0] as string;
  const overlays = createSwarmOverlays({ socketPath: cluster.manager.socket });
  assert.equal(await overlays.remove(previewOverlay.replace('--', '.')), false, 'in use by the preview\'s service: kept');
  const destroyed = await runPier(['env', 'destroy', 'pr-7', '--yes'], { ...server.env, PIER_ENV: 'pr-7' });
  assert.equal(destroyed.code, 0, destroyed.stderr);
  const overlayNames = async (node: SwarmNode) => (await node.docker(['network', 'ls', '--filter', 'label=dev.pier.private=true', '--format', '{{.Name}}'])).split('\n').filter(Boolean);
  await until('the preview\'s overlay to be removed from both nodes', async () => {
    for (const node of [n1, n2]) if ((await overlayNames(node)).includes(previewOverlay)) return null;
    return true;
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${server.stderr().split('\n').filter((l) => /reaper|network/i.test(l)).slice(-8).join('\n')}`);
  });
  assert.deepEqual(await overlayNames(cluster.manager), [overlay.split(' ')[0]], 'production\'s overlay stays');
  assert.match(server.stderr(), /private network of a destroyed environment removed/);
  assert.equal(await overlays.remove(previewOverlay.replace('--', '.')), true, 'gone already: nothing to do');

  // A scaled-down task leaves the name (Swarm takes it out before it stops).
  const down = await runPier(['scale', 'web=1', '--app', 'api'], server.env);
  assert.equal(down.code, 0, down.stderr);
  await until('one web task left in the name', async () => ((await lookup(n1, (workers[0] as { id: string }).id, 'web.api.internal', 'A')).length === 1 ? true : null));
  // And from the hosts files: one web task's IPv6 and IPv4 addresses left.
  await until('one web task left in the hosts file', async () => {
    const text = await sh(n2, (workers[1] as { id: string }).id, 'cat /etc/hosts');
    const lines = text.split('\n').filter((l) => l.endsWith('\tapi.internal web.api.internal'));
    return lines.length === 2 ? true : null;
  });
});
