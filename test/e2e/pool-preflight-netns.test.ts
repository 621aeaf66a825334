// The pool preflight in a network namespace of its own (issue 16; needs root, skipped without):
// with an IPv6 prefix and an IPv4 range routed to `lo` (AnyIP), the IPv4 range binds but the
// IPv6 prefix does not while net.ipv6.ip_nonlocal_bind is 0 (Node cannot set IPV6_FREEBIND): the
// preflight reports EADDRNOTAVAIL with the sysctl as the fix; with the sysctl at 1 it reports
// nothing. The check runs in a Node process started with `nsenter --net` (not `ip netns exec`,
// which remounts /sys). Addresses only from 198.18.0.0/15 and fd00::/8.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFLIGHT = fileURLToPath(new URL('../../api/pool-preflight.js', import.meta.url));
const POOL = fileURLToPath(new URL('../../api/ip-pool.js', import.meta.url));

interface Problem {
  pool: string;
  errno: string;
  fix: string;
}

test('in a namespace: an IPv6 prefix routed to lo binds only with ip_nonlocal_bind=1, and the preflight says so', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to make a network namespace');
  const name = `pier16-${randomBytes(3).toString('hex')}`;
  try {
    await run('ip', ['netns', 'add', name]);
  } catch (err) {
    return t.skip(`cannot make a network namespace: ${(err as Error).message}`);
  }
  t.after(() => run('ip', ['netns', 'del', name]).then(() => undefined));
  const v6 = `fd00:16:${randomInt(0x1000, 0xffff).toString(16)}::/64`;
  const v4 = `198.18.${randomInt(16, 250)}.0/24`;
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', name, 'route', 'add', 'local', v4, 'dev', 'lo']);
  await run('ip', ['-n', name, '-6', 'route', 'add', 'local', v6, 'dev', 'lo']);
  const inside = async (args: string[]) => (await run('nsenter', [`--net=/run/netns/${name}`, ...args], { timeout: 30_000 })).stdout;
  const preflight = async (): Promise<Problem[]> => {
    const script = `const { preflightPools } = await import(${JSON.stringify(PREFLIGHT)}); const { parseIpPool } = await import(${JSON.stringify(POOL)});
      console.log(JSON.stringify(await preflightPools([parseIpPool(${JSON.stringify(v4)}), parseIpPool(${JSON.stringify(v6)})])));`;
    return JSON.parse(await inside([process.execPath, '--input-type=module', '-e', script])) as Problem[];
  };

  await inside(['sysctl', '-q', '-w', 'net.ipv6.ip_nonlocal_bind=0']);
  const off = await preflight();
  assert.deepEqual(off.map((p) => [p.pool, p.errno]), [[v6, 'EADDRNOTAVAIL']], 'the IPv4 range binds; the IPv6 prefix does not');
  assert.match(off[0]?.fix ?? '', /sysctl -w net\.ipv6\.ip_nonlocal_bind=1/);

  await inside(['sysctl', '-q', '-w', 'net.ipv6.ip_nonlocal_bind=1']);
  assert.deepEqual(await preflight(), [], 'with the sysctl, every pool binds');
});
