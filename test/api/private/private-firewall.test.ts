// The chain of offered ports: what it holds (a pure function of networks and instances), and, on
// a host where this test may change the firewall (root, iptables), that it is written whole,
// jumped to once, rewritten when what it should hold changes, and taken off without a trace; and
// that written() resolves only once a chain was written.
// (That the rules stop a peer on a real bridge: test/e2e/private-network.test.ts.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createPrivateFirewall, firewallRules, privateFirewallChain, removePrivateFirewall } from '../../../api/private/private-firewall.js';
import { iptablesUsable } from '../../support/firewall-chains.js';
import { randomId } from '../../../api/ids.js';

const exec = promisify(execFile);

const net = { bridge: 'br-0123456789ab' };
const web = { network: net, ipv4: '10.210.0.3', ipv6: 'fd70:6965:7200::3', ports: [8080, 9090, 8080] };
const worker = { network: net, ipv4: '10.210.0.4', ipv6: 'fd70:6965:7200::4', ports: [] };


/** Whether `p` has resolved by now ('written') or not yet ('waiting'). */
const now = (p: Promise<void>): Promise<string> => Promise.race([p.then(() => 'written'), new Promise<string>((r) => setImmediate(() => r('waiting')))]);

test('the chain keeps other networks out, and lets a peer reach only offered TCP and UDP ports of an instance; everything else new on the bridge is refused', () => {
  const v4 = firewallRules('PIER-x', 4, [net], [{ ...web, udpPorts: [5353] }, worker]).split('\n');
  assert.deepEqual(v4, [
    '*filter',
    ':PIER-x - [0:0]',
    '-A PIER-x -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
    '-A PIER-x ! -i br-0123456789ab -o br-0123456789ab -m conntrack --ctstate NEW -j DROP',
    '-A PIER-x -i br-0123456789ab -o br-0123456789ab -d 10.210.0.3/32 -p tcp -m tcp --dport 8080 -j RETURN',
    '-A PIER-x -i br-0123456789ab -o br-0123456789ab -d 10.210.0.3/32 -p tcp -m tcp --dport 9090 -j RETURN',
    '-A PIER-x -i br-0123456789ab -o br-0123456789ab -d 10.210.0.3/32 -p udp -m udp --dport 5353 -j RETURN',
    '-A PIER-x -i br-0123456789ab -o br-0123456789ab -p tcp -m conntrack --ctstate NEW -j REJECT --reject-with tcp-reset',
    '-A PIER-x -i br-0123456789ab -o br-0123456789ab -p udp -m conntrack --ctstate NEW -j REJECT --reject-with icmp-port-unreachable',
    'COMMIT',
    '',
  ]);
  const v6 = firewallRules('PIER-x', 6, [net], [web, { ...worker, ipv6: null }]);
  assert.match(v6, /-d fd70:6965:7200::3\/128 -p tcp -m tcp --dport 8080 -j RETURN/);
  assert.match(v6, /--reject-with icmp6-port-unreachable/);
  assert.match(v6, /! -i br-0123456789ab -o br-0123456789ab -m conntrack --ctstate NEW -j DROP/);
  assert.doesNotMatch(v6, /-p udp -m udp --dport/);
  assert.doesNotMatch(v6, /10\.210/);
  // No network: an empty chain (nothing refused).
  assert.equal(firewallRules('PIER-x', 4, [], []).split('\n').filter((l) => l.startsWith('-A')).length, 1);
  assert.equal(privateFirewallChain('inst_abc123def456'), 'PIER-abc123def456');
  assert.ok(privateFirewallChain(`inst_${'x'.repeat(40)}`).length <= 28);
});

test('without iptables the server is told why ports are not enforced, and how to fix it', async () => {
  const firewall = createPrivateFirewall({ installationId: 'inst_nothere', log: pino({ level: 'silent' }), iptables: '/nonexistent/iptables', ip6tables: '/nonexistent/ip6tables' });
  const problem = await firewall.apply([net], [web]);
  assert.match(problem ?? '', /private networks are not enforced .*PIER-nothere.*iptables is not installed.*run pier server as root/);
  // Asked again at once (the next names round): the same answer, without running anything.
  assert.equal(await firewall.apply([net], [web]), problem);
  // Never written: what waits for it (the removal of the old FORWARD rules) keeps waiting.
  assert.equal(await now(firewall.written()), 'waiting');
});

test('the chain is made only with a network, rewritten on change, jumped to once, and removed without a trace', async (t) => {
  if (!(await iptablesUsable(t))) return;
  const firewall = createPrivateFirewall({ installationId: `inst_test${randomId(8)}`, log: pino({ level: 'silent' }) });
  const chain = firewall.chain;
  t.after(() => removePrivateFirewall(chain));
  const list = async (binary: string) => (await exec(binary, ['-w', '5', '-S'])).stdout.split('\n').filter((l) => l.includes(chain));

  // No private network yet: nothing is put in the host's firewall.
  assert.equal(await firewall.apply([], []), null);
  assert.deepEqual(await list('iptables'), []);

  const second = createPrivateFirewall({ installationId: `inst_test${randomId(8)}`, log: pino({ level: 'silent' }) });
  t.after(() => removePrivateFirewall(second.chain));
  assert.equal(await now(second.written()), 'waiting', 'not written before any apply()');
  assert.equal(await second.apply([net], [web]), null);
  assert.equal(await now(second.written()), 'written', 'written once apply() has written the chain');
  assert.ok((await exec('iptables', ['-w', '5', '-S', second.chain])).stdout.includes('-d 10.210.0.3/32'), 'and the chain is there then');

  assert.equal(await firewall.apply([net], [web]), null);
  let v4 = await list('iptables');
  assert.equal(v4.filter((l) => l.includes(`-j ${chain}`)).length, 1, v4.join('\n'));
  assert.ok(v4.some((l) => l.includes('-d 10.210.0.3/32') && l.includes('--dport 9090')), v4.join('\n'));
  assert.ok((await list('ip6tables')).some((l) => l.includes('-d fd70:6965:7200::3/128')));

  // The instance is gone: its rules go with it; the jump stays single.
  assert.equal(await firewall.apply([net], [worker]), null);
  v4 = await list('iptables');
  assert.ok(!v4.some((l) => l.includes('10.210.0.3')), v4.join('\n'));
  assert.equal(v4.filter((l) => l.includes(`-j ${chain}`)).length, 1);

  await removePrivateFirewall(chain);
  assert.deepEqual(await list('iptables'), []);
  assert.deepEqual(await list('ip6tables'), []);
});

test('with the kernel not passing bridged traffic to iptables, the server is told ports are not enforced', async (t) => {
  if (!(await iptablesUsable(t))) return;
  const dir = await mkdtemp(join(tmpdir(), 'pier-brnf-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'bridge-nf-call-iptables'), '1\n');
  await writeFile(join(dir, 'bridge-nf-call-ip6tables'), '0\n');
  const firewall = createPrivateFirewall({ installationId: `inst_test${randomId(8)}`, log: pino({ level: 'silent' }), bridgeSysctlDir: dir });
  t.after(() => removePrivateFirewall(firewall.chain));
  const problem = await firewall.apply([net], [web]);
  assert.match(String(problem), /net\.bridge\.bridge-nf-call-ip6tables is 0/);
  assert.match(String(problem), /sysctl -w net\.bridge\.bridge-nf-call-ip6tables=1/);
  assert.doesNotMatch(String(problem), /bridge-nf-call-iptables /);
});

test('a network just made is closed before apply() knows it, without cutting the instances the chain lets through, and stays closed in every rewrite until apply() lists it', async (t) => {
  if (!(await iptablesUsable(t))) return;
  const firewall = createPrivateFirewall({ installationId: `inst_test${randomId(8)}`, log: pino({ level: 'silent' }) });
  const chain = firewall.chain;
  t.after(() => removePrivateFirewall(chain));
  const list = async (binary: string) => (await exec(binary, ['-w', '5', '-S', chain])).stdout;
  const fresh = { bridge: 'br-fedcba987654' };

  // Closed on a host with no chain yet: made, jumped to, refusing everything new on the bridge.
  assert.equal(await firewall.close(fresh), null);
  for (const binary of ['iptables', 'ip6tables']) {
    const rules = await list(binary);
    assert.match(rules, /! -i br-fedcba987654 -o br-fedcba987654 .*-j DROP/);
    assert.match(rules, /-i br-fedcba987654 -o br-fedcba987654 -p tcp .*-j REJECT/);
    assert.match(rules, /-i br-fedcba987654 -o br-fedcba987654 -p udp .*-j REJECT/);
  }
  // Closing again adds nothing; another network's rules written before are kept.
  assert.equal(await firewall.apply([net], [web]), null);
  assert.equal(await firewall.close(fresh), null);
  let v4 = await list('iptables');
  assert.equal(v4.split('\n').filter((l) => l.includes('br-fedcba987654') && l.includes('-p tcp')).length, 1, v4);
  assert.match(v4, /-d 10\.210\.0\.3\/32 -i br-0123456789ab -o br-0123456789ab -p tcp -m tcp --dport 8080 -j RETURN/);
  // A rewrite that does not list it yet (a names round that began before it was made) keeps it closed.
  assert.equal(await firewall.apply([net], [web]), null);
  assert.match(await list('ip6tables'), /-i br-fedcba987654 -o br-fedcba987654 -p tcp .*-j REJECT/);
  // Once listed, it is an ordinary network: gone with it.
  assert.equal(await firewall.apply([net, fresh], [web]), null);
  assert.equal(await firewall.apply([net], [web]), null);
  v4 = await list('iptables');
  assert.doesNotMatch(v4, /br-fedcba987654/);
});
