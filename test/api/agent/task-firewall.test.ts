// Offered ports enforced by `pier agent --docker-host` inside the tasks of its engine
// (api/agent/task-firewall.ts). The labels are read strictly (they end up in iptables input run as
// root); then the real agent on this machine's engine: a "task" container labelled with its
// network's subnet and one offered port takes connections from a peer on that network on the
// offered port only (the other one is reset at once), still takes them on any port from outside
// the subnet (a second network, as the edge and the checks come in through a node's published
// ports), and is enforced again after a restart (a new network namespace). The agent says in
// GET /v1/root how many tasks it enforces. Containers and networks are the test's own, by label.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { OFFER_LABELS, ipv6Batch, offerLabels, overlayMac, parseOffer, subnetHosts, taskIpv6, taskRules } from '../../../api/agent/task-firewall.js';
import { tempRoot } from '../../support/btrfs-loop.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';
import { startNodeAgent } from '../../support/node-agent.js';

const exec = promisify(execFile);
const IMAGE = 'pier-test/busybox:1';

test('the offer labels are read strictly: a subnet and ports, nothing that could reach iptables as more than that', () => {
  const labels = offerLabels('10.210.3.0/24', { tcp: [8080, 9000], udp: [53] });
  assert.deepEqual(parseOffer(labels), { subnet: '10.210.3.0/24', tcp: [8080, 9000], udp: [53], ipv6: null });
  assert.deepEqual(parseOffer(offerLabels('10.210.3.0/24', { tcp: [], udp: [] })), { subnet: '10.210.3.0/24', tcp: [], udp: [], ipv6: null });
  assert.deepEqual(parseOffer(offerLabels('10.210.3.0/24', { tcp: [80], udp: [] }, 'fd70:6965:7200:3::/64')), { subnet: '10.210.3.0/24', tcp: [80], udp: [], ipv6: 'fd70:6965:7200:3::/64' });
  assert.equal(parseOffer({}), null);
  assert.equal(parseOffer(null), null);
  for (const subnet of ['10.0.0.0/8 -j ACCEPT', '10.0.0.0', '300.1.1.0/24', '10.0.0.0/33', '0.0.0.0/0', '10.0.0.0/7', 'fd00::/64', '10.0.0.0/8\n-A INPUT -j ACCEPT']) {
    assert.throws(() => parseOffer({ [OFFER_LABELS.subnet]: subnet, [OFFER_LABELS.ports]: 'tcp= udp=' }), /is not an IPv4 subnet of \/8 to \/32/, subnet);
  }
  for (const ports of ['tcp=0 udp=', 'tcp=70000 udp=', 'tcp=80 -j ACCEPT udp=', 'tcp=8080', '', 'tcp=1.5 udp=', `tcp=${Array.from({ length: 65 }, (_, i) => i + 1).join(',')} udp=`]) {
    assert.throws(() => parseOffer({ [OFFER_LABELS.subnet]: '10.0.0.0/24', [OFFER_LABELS.ports]: ports }), /dev\.pier\.private-ports/, ports);
  }
});

test('the chain: outside the subnet and answers pass, offered ports pass (15 per multiport rule), every other new TCP/UDP from the subnet is rejected', () => {
  const ports = Array.from({ length: 17 }, (_, i) => 9000 + i);
  const rules = taskRules({ subnet: '10.210.3.0/24', tcp: ports, udp: [53], ipv6: null }).split('\n');
  assert.deepEqual(rules, [
    '*filter',
    ':PIER-OFFERED - [0:0]',
    '-A PIER-OFFERED ! -s 10.210.3.0/24 -j RETURN',
    '-A PIER-OFFERED -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN',
    `-A PIER-OFFERED -p tcp -m multiport --dports ${ports.slice(0, 15).join(',')} -j RETURN`,
    '-A PIER-OFFERED -p tcp -m multiport --dports 9015,9016 -j RETURN',
    '-A PIER-OFFERED -p udp -m multiport --dports 53 -j RETURN',
    '-A PIER-OFFERED -p tcp -j REJECT --reject-with tcp-reset',
    '-A PIER-OFFERED -p udp -j REJECT --reject-with icmp-port-unreachable',
    'COMMIT',
    '',
  ]);
});

test('IPv6 on the overlay: the prefix is a unique local /64 and the subnet at most a /20; the ip6tables chain filters the prefix', () => {
  const ports = { [OFFER_LABELS.subnet]: '10.210.3.0/24', [OFFER_LABELS.ports]: 'tcp=8080 udp=' };
  for (const bad of ['2001:db8::/64', 'fd70:6965:7200:3::/48', 'fd70:6965:7200:3::1/64', 'fd70::/64;rm', '10.0.0.0/8', '']) {
    assert.throws(() => parseOffer({ ...ports, [OFFER_LABELS.ipv6]: bad }), /dev\.pier\.private-ipv6 ".*" is not a unique local IPv6 \/64/, bad);
  }
  assert.throws(() => parseOffer({ ...ports, [OFFER_LABELS.subnet]: '10.208.0.0/16', [OFFER_LABELS.ipv6]: 'fd70:6965:7200:3::/64' }), /needs an IPv4 subnet of \/20 or smaller/);
  const v6 = taskRules({ subnet: '10.210.3.0/24', tcp: [8080], udp: [], ipv6: 'fd70:6965:7200:3::/64' }, 6).split('\n');
  assert.equal(v6[2], '-A PIER-OFFERED ! -s fd70:6965:7200:3::/64 -j RETURN');
  assert.equal(v6[5], '-A PIER-OFFERED -p tcp -j REJECT --reject-with tcp-reset');
  assert.equal(v6[6], '-A PIER-OFFERED -p udp -j REJECT --reject-with icmp6-port-unreachable');
});

test('IPv6 on the overlay: PREFIX::IPv4, a neighbour at 02:42 + IPv4 for every other host of the subnet', () => {
  assert.equal(taskIpv6('fd70:6965:7200:3::/64', '198.19.170.4'), 'fd70:6965:7200:3::c613:aa04');
  assert.equal(overlayMac('198.19.170.4'), '02:42:c6:13:aa:04');
  assert.deepEqual(subnetHosts('10.0.0.0/30'), ['10.0.0.1', '10.0.0.2']);
  assert.equal(subnetHosts('10.0.0.0/24').length, 254);
  assert.equal(subnetHosts('10.0.0.77/24')[0], '10.0.0.1', 'host bits in the label are ignored');
  const batch = ipv6Batch({ subnet: '10.0.0.0/29', tcp: [], udp: [], ipv6: 'fd00:1:2:3::/64' }, '10.0.0.2', 'eth1').trim().split('\n');
  assert.deepEqual(batch, [
    'address replace fd00:1:2:3::a00:2/96 dev eth1 nodad',
    ...['1', '3', '4', '5', '6'].map((n) => `neighbour replace fd00:1:2:3::a00:${n} lladdr 02:42:0a:00:00:0${n} dev eth1 nud permanent`),
  ]);
});

async function docker(args: string[]): Promise<string> {
  return (await exec('docker', args, { timeout: 60_000 })).stdout.trim();
}

async function rootInfo(url: string, token: string): Promise<{ offeredPorts: { enforced: number; problem: string | null } | null }> {
  const res = await fetch(new URL('/v1/root', url), { headers: { authorization: `Bearer ${token}` } });
  return (await res.json()) as { offeredPorts: { enforced: number; problem: string | null } | null };
}

test('pier agent --docker-host: a peer on the task\'s network reaches the offered port only; outside the subnet every port answers; a restarted task is enforced again', async (t) => {
  if (!(await requireDocker(t))) return;
  await ensureBusyboxImage(IMAGE);
  const tag = `pier-test-tfw-${randomBytes(4).toString('hex')}`;
  const label = `dev.pier.test=${tag}`;
  t.after(async () => {
    const ids = (await docker(['ps', '-aq', '--filter', `label=${label}`]).catch(() => '')).split('\n').filter(Boolean);
    if (ids.length) await docker(['rm', '-f', ...ids]).catch(() => undefined);
    for (const n of [`${tag}-a`, `${tag}-b`]) await docker(['network', 'rm', n]).catch(() => undefined);
  });
  await docker(['network', 'create', '--label', label, `${tag}-a`]);
  await docker(['network', 'create', '--label', label, `${tag}-b`]);
  const subnet = await docker(['network', 'inspect', '--format', '{{(index .IPAM.Config 0).Subnet}}', `${tag}-a`]);
  const offer = offerLabels(subnet, { tcp: [8080], udp: [] });
  const serve = "mkdir -p /www; echo served > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & httpd -f -p 9090 -h /www & wait";
  // The agent acts on swarm tasks only: a stand-in for the label Swarm puts on each task's container.
  const asTask = ['--label', 'com.docker.swarm.task.id=pier-test-task'];
  const task = await docker(['run', '-d', '--label', label, ...asTask, ...Object.entries(offer).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--network', `${tag}-a`, IMAGE, 'sh', '-c', serve]);
  await docker(['network', 'connect', `${tag}-b`, task]);
  const peer = await docker(['run', '-d', '--label', label, '--network', `${tag}-a`, IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
  const outsider = await docker(['run', '-d', '--label', label, '--network', `${tag}-b`, IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
  const address = async (net: string) => docker(['inspect', '--format', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, task]);

  const root = await tempRoot(t);
  const agent = await startNodeAgent(t, root, ['--docker-host', 'unix:///var/run/docker.sock']);
  const enforced = async (what: string) => {
    for (let i = 0; i < 100; i++) {
      const info = await rootInfo(agent.url, agent.token);
      if ((info.offeredPorts?.enforced ?? 0) >= 1) return info;
      await delay(100);
    }
    throw new Error(`the agent did not enforce ${what} in 10 s\n${agent.stderr().slice(-2000)}`);
  };
  await enforced('the running task');

  const get = (from: string, host: string, port: number) => docker(['exec', from, 'sh', '-c', `timeout 5 wget -q -O- http://${host}:${port}/ 2>&1; echo "rc=$?"`]);
  const check = async (round: string) => {
    const a = await address(`${tag}-a`);
    const b = await address(`${tag}-b`);
    assert.match(await get(peer, a, 8080), /served\s+rc=0/, `${round}: the offered port answers a peer on the network`);
    const closed = await get(peer, a, 9090);
    assert.match(closed, /refused|reset/i, `${round}: a port not offered is refused at once, not left to time out: ${closed}`);
    assert.doesNotMatch(closed, /rc=0/, round);
    assert.match(await get(outsider, b, 9090), /served\s+rc=0/, `${round}: from outside the subnet every port answers`);
    assert.match(await get(outsider, b, 8080), /served\s+rc=0/, round);
  };
  await check('running');
  // Only the labelled container has the chain: the peer's own ports are untouched.
  await assert.rejects(exec('nsenter', [`--net=/proc/${await docker(['inspect', '--format', '{{.State.Pid}}', peer])}/ns/net`, '--', 'iptables', '-n', '-L', 'PIER-OFFERED']));

  // A restart is a new network namespace, with no rules: Docker's start event brings them back.
  await docker(['restart', '-t', '1', task]);
  for (let i = 0; ; i++) {
    const pid = await docker(['inspect', '--format', '{{.State.Pid}}', task]);
    const listed = await exec('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'iptables', '-n', '-L', 'INPUT']).then((r) => r.stdout, () => '');
    if (listed.includes('PIER-OFFERED')) break;
    if (i >= 100) throw new Error(`not enforced again after a restart in 10 s\n${agent.stderr().slice(-2000)}`);
    await delay(100);
  }
  await check('restarted');
  assert.match(agent.stderr(), /offered ports enforced in the task/);
  assert.equal((await rootInfo(agent.url, agent.token)).offeredPorts?.problem, null);

  // Refused, and reported: a labelled container in the node's own namespace (network mode host),
  // and one that is not on the subnet its label names. The node's INPUT is never touched.
  const hostMode = await docker(['run', '-d', '--label', label, ...asTask, ...Object.entries(offer).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--network', 'host', IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
  const elsewhere = await docker(['run', '-d', '--label', label, ...asTask, ...Object.entries(offerLabels('10.254.254.0/24', { tcp: [8080], udp: [] })).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--network', `${tag}-b`, IMAGE, 'sh', '-c', "trap 'exit 0' TERM; sleep 100000 & wait"]);
  for (let i = 0; ; i++) {
    const log = agent.stderr();
    if (log.includes(hostMode.slice(0, 12)) && log.includes(elsewhere.slice(0, 12))) break;
    if (i >= 100) throw new Error(`the agent did not report the two refused containers in 10 s\n${log.slice(-2000)}`);
    await delay(100);
  }
  assert.match(agent.stderr(), /is not a swarm task with a network namespace of its own \(network mode host\)/);
  assert.match(agent.stderr(), /has no address in 10\.254\.254\.0\/24/);
  assert.match((await rootInfo(agent.url, agent.token)).offeredPorts?.problem ?? '', /2 task\(s\) not enforced/);
  await assert.rejects(exec('iptables', ['-w', '5', '-C', 'INPUT', '-j', 'PIER-OFFERED']), "the node's own INPUT has no jump to the chain");
  await docker(['rm', '-f', hostMode, elsewhere]);

  // An agent without --docker-host says so, and enforces nothing.
  const plain = await startNodeAgent(t, await tempRoot(t));
  assert.equal((await rootInfo(plain.url, plain.token)).offeredPorts, null);
  assert.match(plain.stderr(), /offered ports .* are not enforced/);
});

test('pier agent --docker-host with an IPv6 prefix: each task gets PREFIX::IPv4 and reaches the other over IPv6 on the offered port only; the agent reports the addresses', async (t) => {
  if (!(await requireDocker(t))) return;
  await ensureBusyboxImage(IMAGE);
  const tag = `pier-test-tfw6-${randomBytes(4).toString('hex')}`;
  const label = `dev.pier.test=${tag}`;
  t.after(async () => {
    const ids = (await docker(['ps', '-aq', '--filter', `label=${label}`]).catch(() => '')).split('\n').filter(Boolean);
    if (ids.length) await docker(['rm', '-f', ...ids]).catch(() => undefined);
    await docker(['network', 'rm', tag]).catch(() => undefined);
  });
  // An IPv4-only network, as a swarm's overlay is: Docker gives its containers no IPv6 (and the
  // MAC 02:42 + IPv4, as on an overlay); the agent adds IPv6 on top.
  // A /24, as Pier's overlays are (the agent writes a neighbour entry per address): a random one, another tried on a clash.
  for (let i = 0; ; i++) {
    const made = await docker(['network', 'create', '--label', label, '--subnet', `10.231.${Math.floor(Math.random() * 250)}.0/24`, tag]).then(() => true, (err: Error) => (i >= 5 ? Promise.reject(err) : false));
    if (made) break;
  }
  const subnet = await docker(['network', 'inspect', '--format', '{{(index .IPAM.Config 0).Subnet}}', tag]);
  const prefix = `fd70:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}:1::/64`;
  const labels = Object.entries(offerLabels(subnet, { tcp: [8080], udp: [] }, prefix)).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const serve = "mkdir -p /www; hostname > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & httpd -f -p 9090 -h /www & wait";
  const run = () => docker(['run', '-d', '--label', label, '--label', 'com.docker.swarm.task.id=pier-test-task', ...labels, '--network', tag, IMAGE, 'sh', '-c', serve]);
  const [a, b] = [await run(), await run()] as [string, string];
  const ipv4 = (id: string) => docker(['inspect', '--format', `{{(index .NetworkSettings.Networks "${tag}").IPAddress}}`, id]);
  const expected = { [a]: taskIpv6(prefix, await ipv4(a)), [b]: taskIpv6(prefix, await ipv4(b)) };

  const agent = await startNodeAgent(t, await tempRoot(t), ['--docker-host', 'unix:///var/run/docker.sock']);
  let reported: Record<string, string> = {};
  for (let i = 0; ; i++) {
    const info = (await rootInfo(agent.url, agent.token)) as { offeredPorts: { ipv6?: Record<string, string> } | null };
    reported = info.offeredPorts?.ipv6 ?? {};
    if (reported[a] && reported[b]) break;
    if (i >= 100) throw new Error(`the agent did not give both tasks IPv6 in 10 s: ${JSON.stringify(reported)}\n${agent.stderr().slice(-2000)}`);
    await delay(100);
  }
  assert.deepEqual({ [a]: reported[a], [b]: reported[b] }, expected);
  const shown = await docker(['exec', b, 'ip', '-6', '-o', 'address', 'show', 'scope', 'global']);
  assert.match(shown, new RegExp(`inet6 ${expected[b]}/96 `), shown);

  const get = (from: string, host: string, port: number) => docker(['exec', from, 'sh', '-c', `timeout 5 wget -q -O- http://[${host}]:${port}/ 2>&1; echo "rc=$?"`]);
  const hostnameOf = async (id: string) => (await docker(['exec', id, 'hostname'])).trim();
  assert.match(await get(a, expected[b] as string, 8080), new RegExp(`${await hostnameOf(b)}\\s+rc=0`), 'a reaches b over IPv6 on the offered port');
  assert.match(await get(b, expected[a] as string, 8080), new RegExp(`${await hostnameOf(a)}\\s+rc=0`), 'and the other way');
  const closed = await get(a, expected[b] as string, 9090);
  assert.match(closed, /refused|reset/i, `a port not offered is refused over IPv6 too: ${closed}`);
  assert.doesNotMatch(closed, /rc=0/);

  // Names: the API server pushes them (swarm-names.ts); the agent writes them into every task's
  // hosts file on that subnet, and getaddrinfo finds them there, AAAA first.
  const push = (body: unknown) => fetch(new URL('/v1/private-names', agent.url), { method: 'PUT', headers: { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const bAddresses = [expected[b] as string, await ipv4(b)];
  const pushed = await push({ networks: [{ subnet, hosts: bAddresses.map((address) => ({ address, names: ['web.b.internal', 'b.internal'] })) }, { subnet: '10.254.0.0/24', hosts: [] }] });
  assert.equal(pushed.status, 200, await pushed.text());
  const hostsOf = (id: string) => docker(['exec', id, 'cat', '/etc/hosts']);
  assert.match(await hostsOf(a), new RegExp(`${expected[b]}\\tweb\\.b\\.internal b\\.internal\\n`));
  assert.match(await hostsOf(a), /localhost/, "Docker's lines stay");
  const named = await docker(['exec', a, 'sh', '-c', 'timeout 5 ping6 -c 1 -W 2 web.b.internal 2>&1; echo "rc=$?"']);
  assert.match(named, new RegExp(`PING web\\.b\\.internal \\(${expected[b]}\\)[^]*rc=0`), named);
  assert.match(await get(a, 'web.b.internal', 8080).catch((e: Error) => e.message), new RegExp(`${await hostnameOf(b)}\\s+rc=0`), 'by name, on the offered port');
  assert.equal(((await rootInfo(agent.url, agent.token)) as { offeredPorts: { named?: number | null } | null }).offeredPorts?.named, 2);
  // The names leave: an empty push takes the block out, Docker's lines stay.
  assert.equal((await push({ networks: [{ subnet, hosts: [] }] })).status, 200);
  assert.doesNotMatch(await hostsOf(a), /internal/);
  assert.match(await hostsOf(a), /localhost/);
  // A malformed push is refused with its reason; nothing is written.
  const refused = await push({ networks: [{ subnet, hosts: [{ address: '10.0.0.1 evil', names: ['x.internal'] }] }] });
  assert.equal(refused.status, 400);
  assert.match(await refused.text(), /E_AGENT_BAD_REQUEST.*is not an IP address/);
});
