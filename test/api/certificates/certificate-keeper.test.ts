// The certificate keeper's own state, on a real database: the backoff after a failed order is
// kept in acme_backoff, so a restarted keeper (a new instance) does not order again before the
// wait is over, and a success clears it; ACME certificates of names the app no longer lists are
// kept unserved for keepDroppedMs and reused with no new order if a name comes back, then removed
// with a cert.removed event, uploaded ones and listed names never. The CA is played by a
// scripted issuer here (the keeper's logic is under test); test/e2e/acme-pebble.test.ts runs the
// real one.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import type { AcmeConfig } from '../../../api/certificates/acme-config.js';
import type { AcmeIssuer } from '../../../api/certificates/acme-issuer.js';
import { checkCertificate } from '../../../api/certificates/certificate-check.js';
import { createCertificateKeeper } from '../../../api/certificates/certificate-keeper.js';
import { createKeyVault, type KeyVault } from '../../../api/certificates/key-vault.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEventLog } from '../../../api/event-log.js';
import { newId } from '../../../api/ids.js';
import { createTransactions } from '../../../api/transactions.js';
import type { Db } from '../../../db/database.js';
import { acmeBackoff, certificates, endpoints, events } from '../../../db/schema/index.js';
import { createApp, createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { makeTestCa, type TestCa } from '../../support/tls-certs.js';

const log = pino({ level: 'silent' });
const config: AcmeConfig = { directoryUrl: 'https://127.0.0.1:1/dir', email: undefined, ca: undefined, renewBeforeMs: 3_600_000, checkEveryMs: 3_600_000, retryMs: 60_000, edgeWaitMs: 1_000, keepDroppedMs: 0 };

const edgeLog = pino({ level: 'silent' });

interface Setup {
  db: Db;
  vault: KeyVault;
  ca: TestCa;
  appId: string;
  keeper(issuer: AcmeIssuer, refreshed?: string[], keepDroppedMs?: number): ReturnType<typeof createCertificateKeeper>;
}

async function setup(t: TestContext, names: string[]): Promise<Setup> {
  const { db } = await createTestDb(t);
  const vault = createKeyVault(randomBytes(32));
  const appId = await createApp(db, await createOrg(db, 'acme'), 'shop');
  await db.insert(endpoints).values({ id: newId('ep'), appId, process: 'web', port: 8443, targetPort: 8080, tls: 'terminate', tlsOptions: { acmeNames: names } });
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  return {
    db,
    vault,
    ca: makeTestCa(t),
    appId,
    keeper: (issuer, refreshed = [], keepDroppedMs = 0) => createCertificateKeeper({ db, transactions, events, vault, issuer, config: { ...config, keepDroppedMs }, log, refresh: (id) => refreshed.push(id) }),
  };
}

async function store(s: Setup, name: string, source: 'acme' | 'upload'): Promise<string> {
  const leaf = s.ca.issue({ cn: name, names: [name] });
  const c = checkCertificate(leaf.cert + s.ca.cert, leaf.key);
  const id = newId('cert');
  await s.db.insert(certificates).values({ id, appId: s.appId, names: c.names, chainPem: c.chainPem, keyEncrypted: s.vault.seal(c.keyPem), fingerprint: c.fingerprint, issuer: c.issuer, notBefore: c.notBefore, notAfter: c.notAfter, source });
  return id;
}

test('a failed order waits in the database: a restarted keeper does not order again before the wait is over', async (t) => {
  const s = await setup(t, ['a.example.test']);
  let calls = 0;
  let refuse = true;
  const issuer: AcmeIssuer = {
    async issue({ name }) {
      calls++;
      if (refuse) throw new Error(`urn:ietf:params:acme:error:rejectedIdentifier: ${name} is refused`);
      const leaf = s.ca.issue({ cn: name, names: [name] });
      return { chainPem: leaf.cert + s.ca.cert, keyPem: leaf.key };
    },
  };
  await s.keeper(issuer).runOnce();
  assert.equal(calls, 1);
  const [wait] = await s.db.select().from(acmeBackoff);
  assert.equal(wait?.failures, 1);
  assert.match(wait?.lastError ?? '', /rejectedIdentifier/);
  assert.ok(wait!.nextAt.getTime() > Date.now() + 30_000);

  // A restart: a new keeper, nothing in memory, reads the wait and leaves the name alone.
  await s.keeper(issuer).runOnce();
  assert.equal(calls, 1, 'the restarted keeper ordered again before the wait was over');

  // The wait is over: one more failure doubles it.
  await s.db.update(acmeBackoff).set({ nextAt: new Date(Date.now() - 1) });
  await s.keeper(issuer).runOnce();
  assert.equal(calls, 2);
  const [again] = await s.db.select().from(acmeBackoff);
  assert.equal(again?.failures, 2);
  const failed = await s.db.select().from(events).where(eq(events.type, 'cert.failed'));
  assert.deepEqual(failed.map((e) => (e.data as { attempt: number }).attempt).sort(), [1, 2]);

  // Then a success clears it.
  await s.db.update(acmeBackoff).set({ nextAt: new Date(Date.now() - 1) });
  refuse = false;
  await s.keeper(issuer).runOnce();
  assert.equal(calls, 3);
  assert.equal((await s.db.select().from(acmeBackoff)).length, 0);
  assert.equal((await s.db.select().from(certificates)).length, 1);
});

test('ACME certificates of names the app no longer lists are removed with an event; uploaded ones and listed names are kept', async (t) => {
  const s = await setup(t, ['b.example.test']);
  const unlisted = await store(s, 'a.example.test', 'acme');
  const listed = await store(s, 'b.example.test', 'acme');
  const uploaded = await store(s, 'a.example.test', 'upload');
  await s.db.insert(acmeBackoff).values({ appId: s.appId, hostname: 'gone.example.test', failures: 3, nextAt: new Date(Date.now() + 3_600_000), lastError: 'x' });
  let calls = 0;
  const refreshed: string[] = [];
  await s.keeper({ issue: async () => void calls++ as never }, refreshed).runOnce();

  assert.equal(calls, 0, 'the listed name has a valid certificate: nothing to order');
  const left = (await s.db.select({ id: certificates.id }).from(certificates)).map((c) => c.id).sort();
  assert.deepEqual(left, [listed, uploaded].sort());
  const removed = await s.db.select().from(events).where(eq(events.type, 'cert.removed'));
  assert.equal(removed.length, 1);
  assert.equal(removed[0]!.reason, 'acme-name-unlisted');
  assert.deepEqual(removed[0]!.data, { certificate: unlisted, names: ['a.example.test'], source: 'acme', unusedSince: null });
  assert.match(removed[0]!.message, /no longer lists/);
  assert.deepEqual(refreshed, [s.appId]);
  assert.equal((await s.db.select().from(acmeBackoff)).length, 0, 'the wait of an unlisted name goes too');

  // The endpoint turns to certificates = "manual": it serves every certificate of the app, and its
  // deploy counted on them, so they stay (until they expire or are removed by hand).
  await s.db.update(endpoints).set({ tlsOptions: {} });
  await s.keeper({ issue: async () => void calls++ as never }).runOnce();
  assert.deepEqual((await s.db.select({ id: certificates.id }).from(certificates)).map((c) => c.id).sort(), [listed, uploaded].sort());
  // The app no longer terminates TLS at all: its ACME certificates go, the upload stays.
  await s.db.delete(endpoints);
  await s.keeper({ issue: async () => void calls++ as never }).runOnce();
  assert.deepEqual((await s.db.select({ id: certificates.id }).from(certificates)).map((c) => c.id), [uploaded]);
  assert.equal(calls, 0);
});

test('a dropped name keeps its certificate unserved for keepDroppedMs: it is reused with no new order when the name comes back, and removed after', async (t) => {
  const s = await setup(t, ['a.example.test', 'b.example.test']);
  const feed = createEdgeFeed({ db: s.db, log: edgeLog, sharedAddresses: ['127.0.0.1'], keyVault: s.vault });
  t.after(() => feed.close());
  const served = async () => ((await feed.rebuild()).certificates ?? []).map((c) => c.names.join(',')).sort();
  const issued: string[] = [];
  const issuer: AcmeIssuer = {
    async issue({ name }) {
      issued.push(name);
      const leaf = s.ca.issue({ cn: name, names: [name] });
      return { chainPem: leaf.cert + s.ca.cert, keyPem: leaf.key };
    },
  };
  const keepMs = 3_600_000;
  await s.keeper(issuer, [], keepMs).runOnce();
  assert.deepEqual(issued.sort(), ['a.example.test', 'b.example.test']);
  const [bCert] = await s.db.select().from(certificates).where(eq(certificates.names, ['b.example.test']));
  assert.deepEqual(await served(), ['a.example.test', 'b.example.test']);

  // b leaves the manifest: the edge stops serving its certificate at once (the feed goes by the
  // endpoints), and the keeper keeps it, unused, until the keep time is over.
  const ep = (names: string[]) => s.db.update(endpoints).set({ tlsOptions: { acmeNames: names } }).where(eq(endpoints.appId, s.appId));
  await ep(['a.example.test']);
  assert.deepEqual(await served(), ['a.example.test']);
  const before = Date.now();
  await s.keeper(issuer, [], keepMs).runOnce();
  const [kept] = await s.db.select().from(certificates).where(eq(certificates.id, bCert!.id));
  assert.ok(kept?.unusedSince && kept.removeAfter, 'the certificate is kept, marked unused');
  assert.ok(kept.removeAfter!.getTime() >= before + keepMs && kept.removeAfter!.getTime() <= Date.now() + keepMs);
  const unused = await s.db.select().from(events).where(eq(events.type, 'cert.unused'));
  assert.equal(unused.length, 1);
  assert.deepEqual(unused[0]!.data, { certificate: bCert!.id, names: ['b.example.test'], source: 'acme', removeAfter: kept.removeAfter!.toISOString() });
  assert.match(unused[0]!.message, /no longer served[^]*kept until/);
  // Another pass changes nothing (one event, same time).
  await s.keeper(issuer, [], keepMs).runOnce();
  assert.equal((await s.db.select().from(events).where(eq(events.type, 'cert.unused'))).length, 1);
  assert.equal((await s.db.select().from(events).where(eq(events.type, 'cert.removed'))).length, 0);

  // b comes back (a rollback): served again at once, the same certificate, and no new order.
  await ep(['a.example.test', 'b.example.test']);
  assert.deepEqual(await served(), ['a.example.test', 'b.example.test']);
  await s.keeper(issuer, [], keepMs).runOnce();
  assert.deepEqual(issued.sort(), ['a.example.test', 'b.example.test'], 'no new order for the name that came back');
  const [back] = await s.db.select().from(certificates).where(eq(certificates.id, bCert!.id));
  assert.equal(back?.unusedSince, null);
  assert.equal(back?.removeAfter, null);
  const reused = await s.db.select().from(events).where(eq(events.type, 'cert.reused'));
  assert.equal(reused.length, 1);
  assert.equal((reused[0]!.data as { certificate: string }).certificate, bCert!.id);

  // Dropped again, and the keep time is over: removed with cert.removed by the next pass.
  await ep(['a.example.test']);
  await s.keeper(issuer, [], keepMs).runOnce();
  assert.equal((await s.db.select().from(certificates)).length, 2);
  await s.db.update(certificates).set({ removeAfter: new Date(Date.now() - 1) }).where(eq(certificates.id, bCert!.id));
  const refreshed: string[] = [];
  await s.keeper(issuer, refreshed, keepMs).runOnce();
  assert.deepEqual((await s.db.select({ names: certificates.names }).from(certificates)).map((c) => c.names), [['a.example.test']]);
  const removed = await s.db.select().from(events).where(eq(events.type, 'cert.removed'));
  assert.equal(removed.length, 1);
  assert.equal(removed[0]!.reason, 'acme-name-unlisted');
  assert.equal((removed[0]!.data as { certificate: string }).certificate, bCert!.id);
  assert.match(removed[0]!.message, /unused since/);
  assert.deepEqual(refreshed, [s.appId]);
  assert.deepEqual(issued.sort(), ['a.example.test', 'b.example.test']);
});
