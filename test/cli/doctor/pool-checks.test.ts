// pier doctor's address-pool check. The judgement on its own (pure), then the real `pier doctor`
// in a network namespace of the test's own (needs root; skipped without) with an IPv6 prefix
// routed to `lo`: with net.ipv6.ip_nonlocal_bind=0 the check fails and gives the sysctl as the
// fix, with 1 it passes. Addresses only from fd00::/8; `nsenter --net`, not `ip netns exec`.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { parseIpPool } from '../../../api/ip-pool.js';
import { judgePools } from '../../../cli/doctor/pool-checks.js';
import { PIER_BIN } from '../../support/pier-process.js';

const run = promisify(execFile);

test('the pool check: skipped without pools, failed with each problem and its fix, warned when IPv6 binds without the sysctl', () => {
  const v4 = parseIpPool('203.0.113.0/28');
  const v6 = parseIpPool('fd00:7::/64');
  assert.equal(judgePools([], '0', []).status, 'skip');
  assert.equal(judgePools([v4], '0', []).status, 'ok');
  assert.equal(judgePools([v4, v6], '1\n', []).status, 'ok');
  const warned = judgePools([v6], '0\n', []);
  assert.equal(warned.status, 'warn');
  assert.match(warned.fix ?? '', /sysctl -w net\.ipv6\.ip_nonlocal_bind=1/);
  const failed = judgePools([v4, v6], '0\n', [{ pool: v6.cidr, address: 'fd00:7::1', errno: 'EADDRNOTAVAIL', fix: 'the fix' }]);
  assert.deepEqual([failed.status, failed.fix], ['fail', 'the fix']);
  assert.match(failed.message, /cannot bind fd00:7::\/64 \(EADDRNOTAVAIL on fd00:7::1\); net\.ipv6\.ip_nonlocal_bind is 0/);
});

test('pier doctor in a namespace: an IPv6 pool routed to lo fails the check without ip_nonlocal_bind, and passes with it', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to make a network namespace');
  const name = `p16d-${randomBytes(3).toString('hex')}`;
  try {
    await run('ip', ['netns', 'add', name]);
  } catch (err) {
    return t.skip(`cannot make a network namespace: ${(err as Error).message}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'pier-doctor-'));
  t.after(async () => {
    await run('ip', ['netns', 'del', name]);
    await rm(dir, { recursive: true, force: true });
  });
  const pool = `fd00:16:${randomInt(0x100, 0xffff).toString(16)}::/64`;
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', name, '-6', 'route', 'add', 'local', pool, 'dev', 'lo']);
  const env: NodeJS.ProcessEnv = { ...process.env, PIER_IP_POOLS: pool, PIER_DATA_DIR: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
  for (const k of ['DATABASE_URL', 'PIER_API_URL', 'PIER_TOKEN', 'PIER_ROLE']) delete env[k];
  const inside = (args: string[]) => ['--net=/run/netns/' + name, ...args];
  const doctor = async () => {
    // Exit 1 or 0 by the other checks (no server here): only the pool check is looked at.
    const out = await new Promise<string>((resolve) => execFile('nsenter', inside([process.execPath, PIER_BIN, 'doctor', '--json']), { env, timeout: 60_000 }, (_err, stdout) => resolve(stdout)));
    return (JSON.parse(out) as { checks: { name: string; status: string; message: string; fix?: string }[] }).checks.find((c) => c.name === 'ip pools');
  };

  await run('nsenter', inside(['sysctl', '-q', '-w', 'net.ipv6.ip_nonlocal_bind=0']));
  const off = await doctor();
  assert.equal(off?.status, 'fail', JSON.stringify(off));
  assert.match(off?.message ?? '', /EADDRNOTAVAIL.*net\.ipv6\.ip_nonlocal_bind is 0/);
  assert.match(off?.fix ?? '', /sysctl -w net\.ipv6\.ip_nonlocal_bind=1/);

  await run('nsenter', inside(['sysctl', '-q', '-w', 'net.ipv6.ip_nonlocal_bind=1']));
  const on = await doctor();
  assert.equal(on?.status, 'ok', JSON.stringify(on));
  assert.match(on?.message ?? '', /net\.ipv6\.ip_nonlocal_bind=1/);
});
