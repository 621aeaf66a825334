// The private prefixes: parsing with clear errors, the Nth /64 and /24, overlap, and the clash
// check against the host's routes (a table, then the real routes of this host).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PierError } from '../../../api/pier-error.js';
import { prefixClashError, privateClashes, readHostRoutes, type HostRoute } from '../../../api/private/host-routes.js';
import { checkPrivatePrefixes } from '../../../api/private/private-preflight.js';
import { DEFAULT_PRIVATE_IPV4, DEFAULT_PRIVATE_IPV6, parsePrivatePrefixes, privateCapacity, privateSubnetsAt, rangesOverlap } from '../../../api/private/private-prefixes.js';
import { createMemoryRuntime } from '../../../api/runtime/memory-runtime.js';

test('the defaults are a ULA /48 and an IPv4 /16: 256 networks, the Nth /64 and /24 each', () => {
  const p = parsePrivatePrefixes(undefined, '');
  assert.deepEqual(p, { ipv6: DEFAULT_PRIVATE_IPV6, ipv4: DEFAULT_PRIVATE_IPV4 });
  assert.equal(privateCapacity(p), 256);
  assert.deepEqual(privateSubnetsAt(p, 0), { ipv6: 'fd70:6965:7200::/64', ipv4: '10.210.0.0/24' });
  assert.deepEqual(privateSubnetsAt(p, 255), { ipv6: 'fd70:6965:7200:ff::/64', ipv4: '10.210.255.0/24' });
  assert.equal(privateSubnetsAt(p, 256), null);
  const wide = parsePrivatePrefixes('fd12:3456:789a::/56', '10.64.0.0/10');
  assert.equal(privateCapacity(wide), 256, 'the smaller of 2^8 /64s and 2^14 /24s');
  assert.deepEqual(privateSubnetsAt(wide, 17), { ipv6: 'fd12:3456:789a:11::/64', ipv4: '10.64.17.0/24' });
});

test('a prefix that is not a ULA, too long, with host bits, or not IPv4 is refused with the reason and a fix', () => {
  const cases: [string | undefined, string | undefined, RegExp][] = [
    ['2001:db8::/48', undefined, /not a unique local/],
    ['fd70::/64', undefined, /from \/16 to \/63/],
    ['fd70::1/48', undefined, /host bits set/],
    ['nonsense', undefined, /not an IPv6 prefix/],
    [undefined, '10.0.0.0/25', /not an IPv4 network from \/8 to \/24/],
    [undefined, '10.0.0.1/16', /not an IPv4 network/],
    [undefined, 'fd00::/48', /not an IPv4 network/],
  ];
  for (const [v6, v4, message] of cases) {
    assert.throws(
      () => parsePrivatePrefixes(v6, v4),
      (err: unknown) => err instanceof PierError && err.code === 'E_CONFIG_INVALID' && message.test(err.message) && /--private-ipv|use an/.test(`${err.message} ${err.hint ?? ''}`),
      `${v6} ${v4}`,
    );
  }
});

test('ranges overlap when one holds any address of the other, within a family only', () => {
  assert.equal(rangesOverlap('fd00::/64', 'fd00::/8'), true);
  assert.equal(rangesOverlap('fd00::2/64', 'fd70:6965:7200::/48'), false);
  assert.equal(rangesOverlap('10.210.3.0/24', '10.210.0.0/16'), true);
  assert.equal(rangesOverlap('10.211.0.0/16', '10.210.0.0/16'), false);
  assert.equal(rangesOverlap('10.210.0.0/16', 'fd70::/16'), false);
});

test('a host route or address inside a prefix is a clash, except default routes and Pier\'s own bridges', () => {
  const p = parsePrivatePrefixes('fd00::/48', '10.210.0.0/16');
  const routes: HostRoute[] = [
    { prefix: '0.0.0.0/0', iface: 'eth0' },
    { prefix: '::/0', iface: 'eth0' },
    { prefix: 'fd00::/64', iface: 'eth0' },
    { prefix: '10.210.7.0/24', iface: 'br-0123456789ab' },
    { prefix: '10.210.8.0/24', iface: 'wg0' },
    { prefix: '192.0.2.0/24', iface: 'eth0' },
  ];
  const clashes = privateClashes(p, routes, new Set(['br-0123456789ab']));
  assert.deepEqual(clashes, [routes[2], routes[4]]);
  const err = prefixClashError(p, clashes);
  assert.equal(err.code, 'E_PRIVATE_PREFIX_CLASH');
  assert.match(err.message, /fd00::\/64 on eth0, 10\.210\.8\.0\/24 on wg0/);
  assert.match(err.hint ?? '', /--private-ipv6 fd[0-9a-f]{2}:[0-9a-f:]+\/48 \(a fresh random ULA prefix\) and --private-ipv4/);
});

test('the start-up check refuses a prefix over one of this host\'s real routes, and passes the defaults here', async () => {
  const runtime = createMemoryRuntime();
  const routes = (await readHostRoutes()).filter((r) => !r.prefix.endsWith('/0') && !/^(fe80|ff00|::1|127\.)/.test(r.prefix));
  const v4 = routes.find((r) => !r.prefix.includes(':') && Number(r.prefix.split('/')[1]) >= 8 && Number(r.prefix.split('/')[1]) <= 24);
  assert.ok(v4, `this host has an IPv4 route to test with: ${JSON.stringify(routes)}`);
  const [address, bits] = v4.prefix.split('/');
  const network = (address as string).split('.').map(Number).reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - Number(bits));
  const base = network - (network % size);
  const prefix = `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${bits}`;
  await assert.rejects(checkPrivatePrefixes(runtime, parsePrivatePrefixes(undefined, prefix)), (err: unknown) => err instanceof PierError && err.code === 'E_PRIVATE_PREFIX_CLASH' && err.message.includes(v4.iface));
  // The defaults clash with nothing of this host's but the bridges of other Pier servers' private
  // networks (tests running beside this one make them at any moment; the server itself knows
  // them from the engine's labels, which this in-memory engine does not have).
  const defaults = parsePrivatePrefixes(undefined, undefined);
  // A bridge counts as theirs when any of its routes is inside the defaults (a test's network may
  // pair the default IPv4 range with a random IPv6 one); all of its routes are then left out.
  const all = await readHostRoutes();
  const theirs = new Set(all.filter((r) => r.iface.startsWith('br-') && privateClashes(defaults, [{ ...r, iface: 'not-a-bridge' }], new Set()).length > 0).map((r) => r.iface));
  const notPiers = all.filter((r) => !theirs.has(r.iface));
  await checkPrivatePrefixes(runtime, defaults, notPiers);
});
