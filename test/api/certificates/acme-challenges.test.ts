// Pending tls-alpn-01 challenges are shared through the database: a challenge stored by the
// server running the order (A) reaches an edge fed by another API server on the same database
// (B), which answers the validation hello with it; the order learns from the edges' reports that
// they applied it (edges-applied.ts); the removal at the end of the order reaches B's edge too.
// Two apps with a challenge for one name: each app's endpoint answers with its own. A real order
// run by server A against Pebble (Debian's ACME server) is validated through B's edge. On PostgreSQL
// A and B have their own connections (two processes); on PGlite they share the embedded database.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAcmeChallenges } from '../../../api/certificates/acme-challenges.js';
import { createAcmeIssuer } from '../../../api/certificates/acme-issuer.js';
import { checkCertificate } from '../../../api/certificates/certificate-check.js';
import { waitForEdgesApplied, type EdgesApplied } from '../../../api/certificates/edges-applied.js';
import { createKeyVault } from '../../../api/certificates/key-vault.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEdgeReports } from '../../../api/edge-reports.js';
import { createEventLog } from '../../../api/event-log.js';
import { newId } from '../../../api/ids.js';
import { createTransactions } from '../../../api/transactions.js';
import { openDatabase, type Db } from '../../../db/database.js';
import { acmeChallenges, endpoints } from '../../../db/schema/index.js';
import type { EdgeConfig } from '../../../proxy/edge-config.js';
import { servedAcmeTokens } from '../../../proxy/edge-report.js';
import { reportBody } from '../../support/edge-report-body.js';
import { eventually } from '../../support/eventually.js';
import { startPebble } from '../../support/pebble.js';
import { requirePeer } from '../../support/peer-binary.js';
import { freePort } from '../../support/tcp-client.js';
import { createOrg, createApp } from '../../support/test-api.js';
import { createTestDb, createTestDbUrl } from '../../support/test-db.js';
import { createTestEdge, IO_MODES } from '../../support/test-edge.js';
import { makeTestCa } from '../../support/tls-certs.js';

const log = pino({ level: 'silent' });

/** Two handles on one database: two connections on PostgreSQL, the same PGlite otherwise. */
async function twoServersDb(t: TestContext): Promise<[Db, Db]> {
  const url = await createTestDbUrl(t);
  if (url === undefined) {
    const one = await createTestDb(t);
    return [one.db, one.db];
  }
  const a = await openDatabase({ url, dataDir: 'memory://' });
  const b = await openDatabase({ url, dataDir: 'memory://' });
  t.after(async () => {
    await a.close();
    await b.close();
  });
  return [a.db, b.db];
}

async function terminateEndpoint(db: Db, appId: string, port: number, names: string[]): Promise<void> {
  await db.insert(endpoints).values({ id: newId('ep'), appId, process: 'web', port, targetPort: 8080, tls: 'terminate', tlsOptions: { acmeNames: names } });
}

/** The certificate's CN the edge answers an acme-tls/1 hello with, or the error. */
function validationHello(port: number, name: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: name, ALPNProtocols: ['acme-tls/1'], rejectUnauthorized: false }, () => {
      resolve(s.alpnProtocol === 'acme-tls/1' ? String(s.getPeerCertificate().subject.CN) : `alpn ${String(s.alpnProtocol)}`);
      s.destroy();
    });
    s.once('error', (err) => resolve(`error ${err.message}`));
  });
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

test('a challenge stored by the server running the order is answered by an edge another server feeds, and removed from it after the order', async (t) => {
  const io = IO_MODES.find((m) => m.io !== null)!.io!;
  const [dbA, dbB] = await twoServersDb(t);
  const vault = createKeyVault(randomBytes(32));
  const ca = makeTestCa(t);
  const orgId = await createOrg(dbA, 'acme');
  const shop = await createApp(dbA, orgId, 'shop');
  const blog = await createApp(dbA, orgId, 'blog');
  const shopPort = await freePort();
  const blogPort = await freePort();
  await terminateEndpoint(dbA, shop, shopPort, ['a.example.test']);
  await terminateEndpoint(dbA, blog, blogPort, ['a.example.test']);

  // Server A runs the order: its challenges and its own feed (no edge of its own here).
  const changedOnA: string[] = [];
  const onA = createAcmeChallenges({ db: dbA, vault, log, onChange: (appId) => changedOnA.push(appId) });
  // Server B feeds the edge: it only ever hears of A's challenges through the database.
  const onB = createAcmeChallenges({ db: dbB, vault, log, onChange: (appId) => feedB.refresh(appId), pollMs: 50 });
  const feedB = createEdgeFeed({ db: dbB, log, sharedAddresses: ['127.0.0.1'], keyVault: vault, acmeChallenges: () => onB.read() });
  t.after(() => {
    onB.close();
    feedB.close();
  });
  const edge = createTestEdge(t, io);
  let applied: EdgeConfig | null = null;
  feedB.subscribe((config) => {
    void edge.apply(config).then((r) => {
      if (r.ok) applied = config;
    });
  });
  await feedB.rebuild();
  onB.start();
  await until('the first snapshot applied', async () => applied !== null);
  assert.match(await validationHello(shopPort, 'a.example.test'), /^error/, 'no challenge yet: the hello is refused');

  const challenge = ca.issue({ cn: 'shop-challenge', names: ['a.example.test'] });
  const since = await onA.put({ appId: shop, name: 'a.example.test', token: 'tok-shop-1', ...challenge });
  assert.deepEqual(changedOnA, [shop], "A's own feed is told at once");
  await until("B's edge answering A's challenge", async () => (await validationHello(shopPort, 'a.example.test')) === 'shop-challenge');
  // The snapshot B's edge applied carries it and is versioned no earlier than the challenge.
  const withChallenge = applied as unknown as EdgeConfig;
  assert.ok(withChallenge.version >= since);
  assert.deepEqual(withChallenge.acmeChallenges?.map((c) => [c.app, c.name, c.token]), [['shop', 'a.example.test', 'tok-shop-1']]);
  assert.deepEqual(servedAcmeTokens(withChallenge), ['tok-shop-1']);

  // The order waits for the edges' reports of the tokens they serve: an edge that reports a
  // snapshot without the token is named, whatever its version...
  const reports = createEdgeReports({ db: dbB, transactions: createTransactions({ db: dbB, events: createEventLog(dbB) }), log, enqueue: () => undefined });
  const edgeId = { id: newId('edge'), name: 'edge-b' };
  const shop1 = { token: 'tok-shop-1', since };
  await reports.record(reportBody(edgeId, [], { applied: withChallenge.version + 1, acmeTokens: [] }));
  assert.deepEqual(await waitForEdgesApplied(dbA, shop1, { timeoutMs: 200, intervalMs: 20 }), { confirmed: false, waiting: ['edge-b'], live: 1, byVersion: [] });
  // ...and one that reports the token confirms it, seen from server A.
  await reports.record(reportBody(edgeId, [], { applied: withChallenge.version, acmeTokens: servedAcmeTokens(withChallenge) }));
  assert.deepEqual(await waitForEdgesApplied(dbA, shop1, { timeoutMs: 5_000, intervalMs: 20 }), { confirmed: true, waiting: [], live: 1, byVersion: [] });
  // An edge older than the tokens (its report has none) is judged by its snapshot version, and named.
  await reports.record(reportBody(edgeId, [], { applied: since - 1 }));
  assert.deepEqual(await waitForEdgesApplied(dbA, shop1, { timeoutMs: 200, intervalMs: 20 }), { confirmed: false, waiting: ['edge-b'], live: 1, byVersion: ['edge-b'] });
  await reports.record(reportBody(edgeId, [], { applied: withChallenge.version }));
  assert.deepEqual(await waitForEdgesApplied(dbA, shop1, { timeoutMs: 5_000, intervalMs: 20 }), { confirmed: true, waiting: [], live: 1, byVersion: ['edge-b'] });

  // Another app's order for the same name: its own row (the token differs), answered on its own
  // endpoint only; shop's endpoint keeps answering with shop's.
  const blogChallenge = ca.issue({ cn: 'blog-challenge', names: ['a.example.test'] });
  await onA.put({ appId: blog, name: 'a.example.test', token: 'tok-blog-1', ...blogChallenge });
  await until("B's edge answering blog's challenge", async () => (await validationHello(blogPort, 'a.example.test')) === 'blog-challenge');
  assert.equal(await validationHello(shopPort, 'a.example.test'), 'shop-challenge');
  // A newer order of shop for the name (a leftover of an order that died is older): the newest is served.
  const retry = ca.issue({ cn: 'shop-challenge-2', names: ['a.example.test'] });
  await new Promise((r) => setTimeout(r, 5));
  await onA.put({ appId: shop, name: 'a.example.test', token: 'tok-shop-2', ...retry });
  await until('the newer shop challenge', async () => (await validationHello(shopPort, 'a.example.test')) === 'shop-challenge-2');
  // The snapshot now carries shop's newest challenge only: newer than tok-shop-1's, without it.
  // By version an edge on it would confirm tok-shop-1; by token it does not.
  const withRetry = applied as unknown as EdgeConfig;
  assert.ok(withRetry.version >= since);
  assert.deepEqual(servedAcmeTokens(withRetry), ['tok-blog-1', 'tok-shop-2']);
  await reports.record(reportBody(edgeId, [], { applied: withRetry.version, acmeTokens: servedAcmeTokens(withRetry) }));
  assert.equal((await waitForEdgesApplied(dbA, shop1, { timeoutMs: 200, intervalMs: 20 })).confirmed, false);
  assert.equal((await waitForEdgesApplied(dbA, { token: 'tok-shop-2', since }, { timeoutMs: 5_000, intervalMs: 20 })).confirmed, true);
  assert.equal((await dbA.select().from(acmeChallenges)).length, 3);

  // The orders end: removed from the database and from B's edge.
  await onA.remove({ appId: shop, name: 'a.example.test', token: 'tok-shop-2' });
  await until('the older shop challenge back', async () => (await validationHello(shopPort, 'a.example.test')) === 'shop-challenge');
  await onA.remove({ appId: shop, name: 'a.example.test', token: 'tok-shop-1' });
  await onA.remove({ appId: blog, name: 'a.example.test', token: 'tok-blog-1' });
  await until("the challenges gone from B's edge", async () => (await validationHello(shopPort, 'a.example.test')).startsWith('error') && (await validationHello(blogPort, 'a.example.test')).startsWith('error'));
  assert.equal((await dbA.select().from(acmeChallenges)).length, 0);
});

test('an edge whose server cannot open the challenge applies newer snapshots without it: the order waits for its token, not for a version', async (t) => {
  const io = IO_MODES.find((m) => m.io !== null)!.io!;
  const [dbA, dbB] = await twoServersDb(t);
  const ca = makeTestCa(t);
  const orgId = await createOrg(dbA, 'acme');
  const shop = await createApp(dbA, orgId, 'shop');
  const blog = await createApp(dbA, orgId, 'blog');
  const shopPort = await freePort();
  await terminateEndpoint(dbA, shop, shopPort, ['a.example.test']);

  // Server B has another key vault (a data folder that lost its key file): A's challenges do not open there.
  const vaultB = createKeyVault(randomBytes(32));
  const onB = createAcmeChallenges({ db: dbB, vault: vaultB, log, onChange: (appId) => feedB.refresh(appId), pollMs: 50 });
  const feedB = createEdgeFeed({ db: dbB, log, sharedAddresses: ['127.0.0.1'], keyVault: vaultB, acmeChallenges: () => onB.read() });
  t.after(() => {
    onB.close();
    feedB.close();
  });
  const reports = createEdgeReports({ db: dbB, transactions: createTransactions({ db: dbB, events: createEventLog(dbB) }), log, enqueue: () => undefined });
  const edgeId = { id: newId('edge'), name: 'edge-b' };
  const edge = createTestEdge(t, io);
  let applied: EdgeConfig | null = null;
  // Reports go one at a time, in the order of the applies, as a real edge sends them.
  let reporting = Promise.resolve();
  feedB.subscribe((config) => {
    const done = edge.apply(config);
    reporting = reporting
      .then(async () => {
        if (!(await done).ok) return;
        await reports.record(reportBody(edgeId, [], { applied: config.version, acmeTokens: servedAcmeTokens(config) }));
        applied = config;
      })
      .catch(() => undefined); // a report on its way when the test ends meets a closed database
  });
  await feedB.rebuild();
  onB.start();

  const onA = createAcmeChallenges({ db: dbA, vault: createKeyVault(randomBytes(32)), log, onChange: () => undefined });
  const since = await onA.put({ appId: shop, name: 'a.example.test', token: 'tok-shop', ...ca.issue({ cn: 'shop-challenge', names: ['a.example.test'] }) });
  // Anything else that changes on B publishes a snapshot versioned after the challenge, without it.
  await terminateEndpoint(dbA, blog, await freePort(), ['b.example.test']);
  feedB.refresh(blog);
  await until("B's edge on a snapshot newer than the challenge", async () => applied !== null && (applied as EdgeConfig).version >= since && (applied as EdgeConfig).endpoints.length === 2);
  assert.deepEqual((applied as unknown as EdgeConfig).acmeChallenges ?? [], []);
  assert.match(await validationHello(shopPort, 'a.example.test'), /^error/, 'the edge does not answer the challenge');
  // A version check would let the CA validate now, and the validation would fail at this edge.
  const waited = await waitForEdgesApplied(dbA, { token: 'tok-shop', since }, { timeoutMs: 300, intervalMs: 20 });
  assert.deepEqual(waited, { confirmed: false, waiting: ['edge-b'], live: 1, byVersion: [] });
});

test('an expired challenge (its server died mid-order) is not sent and is swept', async (t) => {
  const database = await createTestDb(t);
  const { db } = database;
  const vault = createKeyVault(randomBytes(32));
  const ca = makeTestCa(t);
  const app = await createApp(db, await createOrg(db, 'acme'), 'shop');
  const changed: string[] = [];
  const short = createAcmeChallenges({ db, vault, log, onChange: (id) => changed.push(id), ttlMs: 1 });
  await short.put({ appId: app, name: 'A.Example.Test', token: 'tok', ...ca.issue({ cn: 'c', names: ['a.example.test'] }) });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await short.read(), []);
  assert.equal((await db.select().from(acmeChallenges)).length, 1);
  await short.sync();
  assert.equal((await db.select().from(acmeChallenges)).length, 0);
  await eventually(() => changed.length >= 1, 'the feed told');
});

test('a real order run by server A (Pebble) is validated through the edge server B feeds, after that edge confirmed the challenge', async (t) => {
  if (requirePeer(t, 'pebble') === null || requirePeer(t, 'pebble-challtestsrv') === null) return;
  const io = IO_MODES.find((m) => m.io !== null)!.io!;
  const port = await freePort();
  const pebble = await startPebble(t, { tlsPort: port, validitySeconds: 3600 });
  const [dbA, dbB] = await twoServersDb(t);
  const vault = createKeyVault(randomBytes(32));
  const shop = await createApp(dbA, await createOrg(dbA, 'acme'), 'shop');
  await terminateEndpoint(dbA, shop, port, ['a.example.test']);

  // Server B: feed, challenge poll, and its edge, which reports each snapshot it applies.
  const reports = createEdgeReports({ db: dbB, transactions: createTransactions({ db: dbB, events: createEventLog(dbB) }), log, enqueue: () => undefined });
  const edgeId = { id: newId('edge'), name: 'edge-b' };
  const onB = createAcmeChallenges({ db: dbB, vault, log, onChange: (appId) => feedB.refresh(appId), pollMs: 100 });
  const feedB = createEdgeFeed({ db: dbB, log, sharedAddresses: ['127.0.0.1'], keyVault: vault, acmeChallenges: () => onB.read() });
  t.after(() => {
    onB.close();
    feedB.close();
  });
  const edge = createTestEdge(t, io);
  // Reports go one at a time, in the order of the applies, as a real edge sends them.
  let reporting = Promise.resolve();
  feedB.subscribe((config) => {
    const done = edge.apply(config);
    reporting = reporting
      .then(async () => {
        if ((await done).ok) await reports.record(reportBody(edgeId, [], { applied: config.version, acmeTokens: servedAcmeTokens(config) }));
      })
      .catch(() => undefined); // a report on its way when the test ends meets a closed database
  });
  await feedB.rebuild();
  onB.start();

  // Server A: runs the order, with no edge of its own.
  const dataDir = await mkdtemp(join(tmpdir(), 'pier-acme-a-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const onA = createAcmeChallenges({ db: dbA, vault, log, onChange: () => undefined });
  const waits: EdgesApplied[] = [];
  const issuer = createAcmeIssuer({
    config: { directoryUrl: pebble.directoryUrl, email: undefined, ca: await readFile(pebble.caFile, 'utf8'), renewBeforeMs: 0, checkEveryMs: 0, retryMs: 0, edgeWaitMs: 20_000, keepDroppedMs: 0 },
    vault,
    dataDir,
    challenges: onA,
    log,
    waitForEdges: async (challenge) => {
      const r = await waitForEdgesApplied(dbA, challenge, { timeoutMs: 20_000 });
      waits.push(r);
      return r;
    },
  });
  const issued = await issuer.issue({ appId: shop, app: 'shop', name: 'a.example.test' });
  assert.deepEqual(checkCertificate(issued.chainPem, issued.keyPem).names, ['a.example.test']);
  assert.deepEqual(waits, [{ confirmed: true, waiting: [], live: 1, byVersion: [] }]);
  assert.equal((await dbA.select().from(acmeChallenges)).length, 0, 'the challenge is removed when the order ends');
});
