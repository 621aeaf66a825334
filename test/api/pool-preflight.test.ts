// The pool preflight (issue 16): a pool this host cannot bind (an IPv6 prefix nobody routed here:
// on this machine only ::1 exists) is reported with EADDRNOTAVAIL and the fix (the sysctl), one
// that binds (a /24 of 127.0.0.0/8) is not; a server whose edge runs on this host says so at
// start: a warning and an E_POOL_NOT_BINDABLE log line, an `ip.pool_unbindable` event, and the
// pool's `bindProblem` in GET /v1/ips.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { parseIpPool } from '../../api/ip-pool.js';
import { preflightPools } from '../../api/pool-preflight.js';
import { events } from '../../db/schema/index.js';
import { captureLog } from '../support/log-capture.js';
import { startMemoryServer } from '../support/memory-server.js';
import { createTestDbUrl } from '../support/test-db.js';

const unroutedV6 = 'fd00:77:16::/64';

test('a pool the host cannot bind is reported with its error and fix; one it can bind is not', async () => {
  const v4 = `127.${randomInt(64, 250)}.${randomInt(0, 256)}.0/24`;
  const problems = await preflightPools([parseIpPool(v4), parseIpPool(unroutedV6)]);
  assert.equal(problems.length, 1, JSON.stringify(problems));
  assert.deepEqual([problems[0]?.pool, problems[0]?.address, problems[0]?.errno], [unroutedV6, 'fd00:77:16::1', 'EADDRNOTAVAIL']);
  assert.match(problems[0]?.fix ?? '', /sysctl -w net\.ipv6\.ip_nonlocal_bind=1/);
  assert.match(problems[0]?.fix ?? '', /ip -6 route add local fd00:77:16::\/64 dev lo/);
});

test('a server whose edge runs here reports an unbindable pool at start: warning, log, event and the pool list', async (t) => {
  const logs = captureLog('info');
  const v4 = `127.${randomInt(64, 250)}.${randomInt(0, 256)}.0/24`;
  const { server, request } = await startMemoryServer({ databaseUrl: await createTestDbUrl(t), log: logs.log, env: { PIER_IP_POOLS: `${v4},${unroutedV6}` }, localEdge: true }, t);
  assert.equal(server.warnings.filter((w) => w.includes('E_POOL_NOT_BINDABLE')).length, 1, server.warnings.join('\n'));
  assert.match(server.warnings.find((w) => w.includes(unroutedV6)) ?? '', /ip_nonlocal_bind=1/);
  assert.ok(logs.messages('edge cannot bind pool').some((l) => l.code === 'E_POOL_NOT_BINDABLE' && l.pool === unroutedV6));
  const recorded = await server.internals.db.select().from(events).where(eq(events.type, 'ip.pool_unbindable'));
  assert.deepEqual(recorded.map((e) => [e.reason, e.data.pool, e.data.code]), [['EADDRNOTAVAIL', unroutedV6, 'E_POOL_NOT_BINDABLE']]);
  const res = await request('/v1/ips');
  const body = (await res.json()) as { pools: { cidr: string; size: string; bindProblem: string | null }[] };
  assert.deepEqual(
    body.pools.map((p) => [p.cidr, p.size, p.bindProblem === null]),
    [[v4, '254', true], [unroutedV6, (2n ** 64n - 1n).toString(), false]],
  );
});
