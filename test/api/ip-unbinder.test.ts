// Deleting an app releases an address its endpoints bound only after the edges stopped serving it
// (real database: PGlite, or PostgreSQL with DATABASE_URL; the edges' reports go through
// api/edge-reports.ts as the edge sends them). The address is `releasing` and held while a
// connected edge still binds it or has not applied a snapshot built after the delete; it cools
// down once every such edge confirmed, or when the wait ends, with an event naming the edge that
// never confirmed. An address no endpoint bound cools down at once.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { createAppDeleter } from '../../api/app-deleter.js';
import type { AuthContext } from '../../api/auth.js';
import { createEdgeReports } from '../../api/edge-reports.js';
import type { EdgeReportBody } from '../../api/edge-report-schema.js';
import { createEventLog } from '../../api/event-log.js';
import { parseIpPools } from '../../api/ip-pool.js';
import { createIpService } from '../../api/ip-service.js';
import { createIpUnbinder, notConfirmed } from '../../api/ip-unbinder.js';
import { createTransactions } from '../../api/transactions.js';
import { endpoints, events } from '../../db/schema/index.js';
import { reportBody } from '../support/edge-report-body.js';
import { createApp, createOrg } from '../support/test-api.js';
import { createTestDb } from '../support/test-db.js';
import { throwingRuntime } from '../support/throwing-runtime.js';

const HOUR = 3_600_000;
const WAIT = 60_000;
const EDGE = { id: 'edge-1', name: 'one' };

async function setup(t: TestContext) {
  const { db } = await createTestDb(t);
  const transactions = createTransactions({ db, events: createEventLog(db) });
  let offset = 0;
  const now = () => new Date(Date.now() + offset);
  const ips = createIpService({ db, transactions, pools: parseIpPools(['fd00:16::/126'], ['::1']), sharedAddresses: ['::1'], cooldownMs: HOUR, now });
  const log = pino({ level: 'silent' });
  const reports = createEdgeReports({ db, transactions, log, enqueue: () => {} });
  const unbinder = createIpUnbinder({ db, transactions, log, cooldownMs: HOUR, now });
  const deleter = createAppDeleter({ runtime: throwingRuntime(), transactions, onDeleted: () => {}, ipCooldownMs: HOUR, ipUnbindWaitMs: WAIT });
  const orgId = await createOrg(db, 'acme');
  const auth: AuthContext = { orgId, appId: null, tokenId: 'tok_test', scope: 'deploy' };
  /** An app with an address and an endpoint on :9000 that binds it. */
  const appWithAddress = async (name: string) => {
    const appId = await createApp(db, orgId, name);
    const { ip } = await ips.allocate(auth, name, 'ipv6');
    const [ep] = await db.insert(endpoints).values({ id: `ep_${name}`, appId, process: 'web', port: 9000, targetPort: 8080, bindings: [ip.address] }).returning();
    return { appId, address: ip.address, endpointId: (ep as { id: string }).id };
  };
  /** The edge reports the endpoint bound on the address (or nothing), at a snapshot version. */
  const report = (applied: number, bound: { id: string; address: string } | null): Promise<unknown> => {
    const body: EdgeReportBody = reportBody(EDGE, bound ? [{ id: bound.id, revision: 1, port: 9000 }] : [], { applied });
    for (const e of body.endpoints) for (const l of e.listeners) l.address = bound?.address ?? l.address;
    return reports.record(body);
  };
  const eventsOf = async (type: string) => (await db.select().from(events).where(eq(events.type, type))).map((e) => ({ reason: e.reason, message: e.message, data: e.data }));
  return { db, ips, auth, unbinder, deleter, report, eventsOf, appWithAddress, later: (ms: number) => void (offset += ms) };
}

test('a deleted app keeps its address releasing until the edge reports a snapshot without it; then it cools down', async (t) => {
  const { ips, auth, unbinder, deleter, report, eventsOf, appWithAddress } = await setup(t);
  const a = await appWithAddress('a');
  await report(Date.now(), { id: a.endpointId, address: a.address });

  const deleted = await deleter.delete(auth, 'a', 0);
  assert.deepEqual(deleted.addresses, [a.address]);
  const releasing = await ips.describe(auth, a.address);
  assert.deepEqual([releasing.state, releasing.app, releasing.awaitingEdges], ['releasing', null, ['one']]);
  assert.deepEqual((await eventsOf('ip.releasing')).map((e) => e.data.edges), [[EDGE]]);
  assert.deepEqual(await eventsOf('ip.released'), [], 'not released before the edge confirms');

  // The edge still binds it: held. A new app does not get it meanwhile.
  assert.equal(await unbinder.check(), 0);
  await report(Date.now(), { id: a.endpointId, address: a.address });
  assert.equal(await unbinder.check(), 0);
  await appWithAddress('b').then((b) => assert.notEqual(b.address, a.address));
  assert.equal((await ips.describe(auth, a.address)).state, 'releasing');

  // A snapshot built after the delete, without the endpoint: confirmed, and the cool-down starts now.
  const before = Date.now();
  await report(Date.now(), null);
  assert.equal(await unbinder.check(), 1);
  const cooling = await ips.describe(auth, a.address);
  assert.deepEqual([cooling.state, cooling.awaitingEdges], ['cooling', []]);
  assert.ok(Date.parse(cooling.reusableAt as string) >= before + HOUR && Date.parse(cooling.reusableAt as string) < before + HOUR + WAIT, 'the cool-down counts from the confirmation');
  assert.deepEqual((await eventsOf('ip.released')).map((e) => [e.reason, e.data.address]), [['edges-confirmed', a.address]]);
  assert.equal(await unbinder.check(), 0, 'finished once');
});

test('an edge that never confirms is named when the wait ends, and the cool-down starts anyway', async (t) => {
  const { ips, auth, unbinder, deleter, report, eventsOf, appWithAddress, later } = await setup(t);
  const a = await appWithAddress('a');
  // Its last report is from before the delete: it does not bind the address, but it has not
  // applied a snapshot built since either, so it does not count as a confirmation.
  await report(Date.now() - 5_000, null);
  await deleter.delete(auth, 'a', 0);
  assert.equal(await unbinder.check(), 0);
  assert.equal((await ips.describe(auth, a.address)).state, 'releasing');

  later(WAIT + 1);
  assert.equal(await unbinder.check(), 1);
  const [unconfirmed] = await eventsOf('ip.unbind_unconfirmed');
  assert.equal(unconfirmed?.reason, 'timeout');
  assert.match(unconfirmed?.message ?? '', /edge "one" has not applied a snapshot built since the delete.*the cool-down starts anyway/);
  assert.deepEqual((unconfirmed?.data.unconfirmed as { id: string }[]).map((u) => u.id), [EDGE.id]);
  assert.equal((await ips.describe(auth, a.address)).state, 'cooling');
  assert.deepEqual(await eventsOf('ip.released'), []);
});

test('an address no endpoint bound, or with no edge connected, cools down at the delete', async (t) => {
  const { db, ips, auth, deleter, eventsOf, appWithAddress } = await setup(t);
  const a = await appWithAddress('a');
  await db.delete(endpoints).where(eq(endpoints.appId, a.appId));
  const b = await appWithAddress('b');
  await deleter.delete(auth, 'a', 0);
  await deleter.delete(auth, 'b', 0);
  assert.equal((await ips.describe(auth, a.address)).state, 'cooling');
  assert.equal((await ips.describe(auth, b.address)).state, 'cooling', 'no edge has ever reported: nothing to wait for');
  assert.deepEqual((await eventsOf('ip.released')).map((e) => [e.reason, e.data.address]), [['app-deleted', a.address], ['app-deleted', b.address]]);
  assert.deepEqual(await eventsOf('ip.releasing'), []);
});

test('notConfirmed says why an edge has not confirmed, and that it went quiet', () => {
  const released = new Date('2026-12-01T12:00:00Z');
  const edge = (applied: number, address: string | null, live: boolean) => ({
    id: 'e',
    name: 'e',
    ageMs: live ? 1_000 : 45_000,
    live,
    report: reportBody(EDGE, address ? [{ id: 'ep', revision: 1, port: 9000 }] : [], { applied }),
  });
  const binding = edge(released.getTime() + 1, 'x', true);
  for (const l of binding.report.endpoints[0]?.listeners ?? []) l.address = 'fd00:16:0:0::1';
  assert.equal(notConfirmed('fd00:16::1', released, binding), 'still binds it');
  assert.equal(notConfirmed('fd00:16::1', released, edge(released.getTime() + 1, null, true)), null);
  assert.match(notConfirmed('fd00:16::1', released, edge(released.getTime() - 1, null, false)) ?? '', /has not applied a snapshot.*stopped reporting 45 s ago/);
  assert.equal(notConfirmed('fd00:16::1', released, undefined), 'has no report on record');
});
