// The private names a node agent writes into its tasks' hosts files (api/agent/task-names.ts): the
// push is read strictly (it ends up in a file every task reads), and Pier's block replaces only
// itself, keeping Docker's lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOSTS_BEGIN, HOSTS_END, hostsWithNames, parseNames } from '../../../api/agent/task-names.js';

const DOCKER = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.1.5\tabc123\n';

test('the names block goes after Docker\'s lines, IPv6 first; a new push replaces it; an empty one removes it', () => {
  const hosts = [
    { address: '10.0.1.6', names: ['web.api.internal', 'api.internal'] },
    { address: 'fd00:1:2:3::a00:106', names: ['web.api.internal', 'api.internal'] },
  ];
  const once = hostsWithNames(DOCKER, hosts);
  assert.equal(once, `${DOCKER}${HOSTS_BEGIN}\nfd00:1:2:3::a00:106\tweb.api.internal api.internal\n10.0.1.6\tweb.api.internal api.internal\n${HOSTS_END}\n`);
  assert.equal(hostsWithNames(once, hosts), once, 'the same push leaves the file as it is');
  const fewer = hostsWithNames(once, [hosts[0] as (typeof hosts)[0]]);
  assert.equal(fewer, `${DOCKER}${HOSTS_BEGIN}\n10.0.1.6\tweb.api.internal api.internal\n${HOSTS_END}\n`);
  assert.equal(hostsWithNames(fewer, []), DOCKER);
  // Docker rewrote its part (a network joined) above the block: kept, block replaced once.
  const rewritten = `${DOCKER}10.0.2.9\tabc123\n${HOSTS_BEGIN}\n10.0.1.6\told.api.internal\n${HOSTS_END}\n`;
  assert.equal(hostsWithNames(rewritten, []), `${DOCKER}10.0.2.9\tabc123\n`);
  // A block cut short (no end marker) is dropped to the end of the file, not left half.
  assert.equal(hostsWithNames(`${DOCKER}${HOSTS_BEGIN}\n10.0.1.6\tweb.api.internal\n`, []), DOCKER);
});

test('a push is read strictly: IPv4 subnets, IP addresses, lowercase .internal names', () => {
  const ok = parseNames({ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: 'fd00::1', names: ['web.api.internal'] }] }, { subnet: '10.0.2.0/24', hosts: [] }] });
  assert.deepEqual([...ok], [['10.0.1.0/24', [{ address: 'fd00::1', names: ['web.api.internal'] }]], ['10.0.2.0/24', []]]);
  const bad: [unknown, RegExp][] = [
    [null, /needs "networks"/],
    [{ networks: {} }, /needs "networks"/],
    [{ networks: [{ subnet: 'fd00::/64', hosts: [] }] }, /is not an IPv4 CIDR/],
    [{ networks: [{ subnet: '10.0.1.0/24' }] }, /"hosts" of 10\.0\.1\.0\/24 must be a list/],
    [{ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: '10.0.1.5\n1.2.3.4', names: ['a.internal'] }] }] }, /is not an IP address/],
    [{ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: '10.0.1.5', names: ['evil.com'] }] }] }, /lowercase DNS names ending in \.internal/],
    [{ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: '10.0.1.5', names: ['a.internal b.internal'] }] }] }, /lowercase DNS names/],
    [{ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: '10.0.1.5', names: [] }] }] }, /1 to 16/],
    [{ networks: [{ subnet: '10.0.1.0/24', hosts: [{ address: '10.0.1.5', names: ['Web.internal'] }] }] }, /lowercase/],
  ];
  for (const [body, message] of bad) assert.throws(() => parseNames(body), (err: Error & { code?: string }) => err.code === 'E_AGENT_BAD_REQUEST' && message.test(err.message), JSON.stringify(body));
});
