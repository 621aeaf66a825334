// Dedicated addresses on the real database (PGlite, or PostgreSQL with DATABASE_URL): allocation
// takes the lowest free address and answers an app's second request with its first address;
// 50 concurrent allocations give 50 different addresses; a full pool is E_POOL_EXHAUSTED; a
// release is refused while an endpoint binds the address and starts a cool-down that keeps it
// from other apps until it ends; deleting an app releases its addresses; each change is an event.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { eq } from 'drizzle-orm';
import { createAppDeleter } from '../../api/app-deleter.js';
import type { AuthContext } from '../../api/auth.js';
import { syncEndpoints } from '../../api/endpoint-sync.js';
import { createEventLog } from '../../api/event-log.js';
import { parseIpPools } from '../../api/ip-pool.js';
import { createIpService } from '../../api/ip-service.js';
import { parseManifest } from '../../api/manifest.js';
import { createTransactions } from '../../api/transactions.js';
import { events, ipAddresses } from '../../db/schema/index.js';
import { createApp, createOrg } from '../support/test-api.js';
import { createTestDb } from '../support/test-db.js';
import { throwingRuntime } from '../support/throwing-runtime.js';

const HOUR = 3_600_000;

async function setup(t: TestContext, pools: string[]) {
  const { db } = await createTestDb(t);
  const eventLog = createEventLog(db);
  const transactions = createTransactions({ db, events: eventLog });
  let clock = new Date('2026-12-01T12:00:00Z').getTime();
  const ips = createIpService({ db, transactions, pools: parseIpPools(pools, ['127.0.0.1', '::1']), sharedAddresses: ['127.0.0.1', '::1'], cooldownMs: HOUR, now: () => new Date(clock) });
  const orgId = await createOrg(db, 'acme');
  const auth: AuthContext = { orgId, appId: null, tokenId: 'tok_test', scope: 'deploy' };
  return { db, ips, orgId, auth, transactions, advance: (ms: number) => void (clock += ms) };
}

function code(c: string, message?: RegExp) {
  return (err: Error & { code?: string }) => err.code === c && (message ? message.test(err.message) : true);
}

test('allocation takes the lowest free address, once per app and family, and a full pool is E_POOL_EXHAUSTED', async (t) => {
  const { db, ips, orgId, auth } = await setup(t, ['203.0.113.8/30', 'fd00:1::/64']);
  for (const name of ['a', 'b', 'c']) await createApp(db, orgId, name);
  const a = await ips.allocate(auth, 'a', 'ipv4');
  assert.deepEqual([a.ip.address, a.ip.app, a.ip.state, a.created], ['203.0.113.9', 'a', 'allocated', true]);
  const again = await ips.allocate(auth, 'a', 'ipv4');
  assert.deepEqual([again.ip.address, again.created], ['203.0.113.9', false]);
  assert.equal((await ips.allocate(auth, 'b', 'ipv4')).ip.address, '203.0.113.10');
  await assert.rejects(ips.allocate(auth, 'c', 'ipv4'), code('E_POOL_EXHAUSTED', /203\.0\.113\.8\/30 \(2\)/));
  assert.equal((await ips.allocate(auth, 'a', 'ipv6')).ip.address, 'fd00:1::1');
  const listed = await ips.list(auth, {});
  assert.deepEqual(
    listed.map((r) => [r.address, r.kind, r.app]),
    [['127.0.0.1', 'shared', null], ['::1', 'shared', null], ['203.0.113.9', 'dedicated', 'a'], ['fd00:1::1', 'dedicated', 'a'], ['203.0.113.10', 'dedicated', 'b']],
  );
  assert.deepEqual((await ips.list(auth, { family: 'ipv6', shared: false })).map((r) => r.address), ['fd00:1::1']);
  assert.deepEqual((await ips.list(auth, { app: 'b' })).map((r) => r.address), ['203.0.113.10']);
  const allocated = await db.select().from(events).where(eq(events.type, 'ip.allocated'));
  assert.equal(allocated.length, 3);
});

test('50 concurrent allocations for 50 apps give 50 different addresses', async (t) => {
  const { db, ips, orgId, auth } = await setup(t, ['127.77.0.0/24']);
  const names = Array.from({ length: 50 }, (_, i) => `app-${i}`);
  for (const n of names) await createApp(db, orgId, n);
  const results = await Promise.all(names.map((n) => ips.allocate(auth, n, 'ipv4')));
  const addresses = results.map((r) => r.ip.address);
  assert.equal(new Set(addresses).size, 50, `duplicates in ${addresses.join(' ')}`);
  assert.ok(results.every((r) => r.created));
  const rows = await db.select().from(ipAddresses);
  assert.equal(rows.length, 50);
  assert.equal(new Set(rows.map((r) => r.appId)).size, 50);
  // The lowest 50: nothing was skipped.
  assert.deepEqual([...addresses].sort((x, y) => Number(x.split('.')[3]) - Number(y.split('.')[3])), names.map((_, i) => `127.77.0.${i + 1}`));
});

test('a release is refused while an endpoint binds the address, then cools down before another app gets it', async (t) => {
  const { db, ips, orgId, auth, transactions, advance } = await setup(t, ['203.0.113.8/30']);
  const aId = await createApp(db, orgId, 'a');
  await createApp(db, orgId, 'b');
  await createApp(db, orgId, 'c');
  const { ip } = await ips.allocate(auth, 'a', 'ipv4');
  await ips.allocate(auth, 'b', 'ipv4');
  const manifest = (ipv4: string) => parseManifest(`app = "a"\nimage = "x:1"\n[processes.web]\ncmd = ["x"]\n[[endpoints]]\nprocess = "web"\nport = 9000\ntarget = 8080\nipv4 = "${ipv4}"\nipv6 = "none"\n`);
  await transactions.run((tx) => syncEndpoints(tx.tx, aId, manifest('auto'), { refuseMissingFor: 'a' }));
  await assert.rejects(ips.release(auth, ip.address), code('E_IP_IN_USE', /a:9000/));
  assert.deepEqual((await ips.describe(auth, ip.address)).endpoints, [{ app: 'a', port: 9000 }]);

  await transactions.run((tx) => syncEndpoints(tx.tx, aId, manifest('shared'), { refuseMissingFor: 'a' }));
  const released = await ips.release(auth, ip.address);
  assert.equal(released.state, 'cooling');
  await assert.rejects(ips.release(auth, ip.address), code('E_IP_NOT_FOUND'));
  // Its endpoint asks for a dedicated address it no longer has: a deploy would be refused with the command to run.
  await assert.rejects(
    transactions.run((tx) => syncEndpoints(tx.tx, aId, manifest('dedicated'), { refuseMissingFor: 'a' })),
    (err: Error & { code?: string; hint?: string }) => err.code === 'E_IP_NOT_ALLOCATED' && /pier ips allocate --app a --v4/.test(err.hint ?? ''),
  );
  // Cooling: the pool's only other address is b's, so c finds nothing until the cool-down ends.
  await assert.rejects(ips.allocate(auth, 'c', 'ipv4'), code('E_POOL_EXHAUSTED'));
  assert.equal((await ips.describe(auth, ip.address)).state, 'cooling');
  advance(HOUR - 1);
  await assert.rejects(ips.allocate(auth, 'c', 'ipv4'), code('E_POOL_EXHAUSTED'));
  advance(1);
  const reused = await ips.allocate(auth, 'c', 'ipv4');
  assert.deepEqual([reused.ip.address, reused.ip.app, reused.ip.releasedAt], [ip.address, 'c', null]);
  const released_events = await db.select().from(events).where(eq(events.type, 'ip.released'));
  assert.equal(released_events.length, 1);
});

test('an app-bound token sees its app only; deleting an app releases its addresses; bad requests are refused with their code', async (t) => {
  const { db, ips, orgId, auth, transactions } = await setup(t, ['203.0.113.8/30']);
  const aId = await createApp(db, orgId, 'a');
  await createApp(db, orgId, 'b');
  const { ip } = await ips.allocate(auth, 'a', 'ipv4');
  const other = await ips.allocate(auth, 'b', 'ipv4');
  const bound: AuthContext = { ...auth, appId: aId };
  assert.deepEqual((await ips.list(bound, { shared: false })).map((r) => r.address), [ip.address]);
  await assert.rejects(ips.describe(bound, other.ip.address), code('E_IP_NOT_FOUND'));
  await assert.rejects(ips.release(bound, other.ip.address), code('E_IP_NOT_FOUND'));
  await assert.rejects(ips.allocate(bound, 'b', 'ipv6'), code('E_APP_NOT_FOUND'));

  await assert.rejects(ips.allocate(auth, 'a', 'ipv6'), code('E_NO_IP_POOL', /no IPv6 pool/));
  await assert.rejects(ips.release(auth, 'not-an-ip'), code('E_BAD_REQUEST'));
  await assert.rejects(ips.allocate(auth, 'ghost', 'ipv4'), code('E_APP_NOT_FOUND'));
  await assert.rejects(ips.release(auth, '203.0.113.8'), code('E_IP_NOT_FOUND'));

  const deleter = createAppDeleter({ runtime: throwingRuntime(), transactions, onDeleted: () => {}, ipCooldownMs: HOUR });
  const result = await deleter.delete(auth, 'a', 0);
  assert.deepEqual(result.addresses, [ip.address]);
  const described = await ips.describe(auth, ip.address);
  assert.deepEqual([described.state, described.app], ['cooling', null]);
  assert.deepEqual((await ips.list(auth, { shared: false })).map((r) => r.address), [other.ip.address]);
  const released = await db.select().from(events).where(eq(events.type, 'ip.released'));
  assert.deepEqual(released.map((e) => [e.reason, e.data.address]), [['app-deleted', ip.address]]);
});
