// The certificate keeper's own state, on a real database: the backoff after a failed order is
// kept in acme_backoff, so a restarted keeper (a new instance) does not order again before the
// wait is over, and a success clears it; ACME certificates of names the app no longer lists are
// removed with a cert.removed event, uploaded ones and listed names never. The CA is played by a
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
import { createEventLog } from '../../../api/event-log.js';
import { newId } from '../../../api/ids.js';
import { createTransactions } from '../../../api/transactions.js';
import type { Db } from '../../../db/database.js';
import { acmeBackoff, certificates, endpoints, events } from '../../../db/schema/index.js';
import { createApp, createOrg } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { makeTestCa, type TestCa } from '../../support/tls-certs.js';

const log = pino({ level: 'silent' });
const config: AcmeConfig = { directoryUrl: 'https://127.0.0.1:1/dir', email: undefined, ca: undefined, renewBeforeMs: 3_600_000, checkEveryMs: 3_600_000, retryMs: 60_000, edgeWaitMs: 1_000 };

interface Setup {
  db: Db;
  vault: KeyVault;
  ca: TestCa;
  appId: string;
  keeper(issuer: AcmeIssuer, refreshed?: string[]): ReturnType<typeof createCertificateKeeper>;
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
    keeper: (issuer, refreshed = []) => createCertificateKeeper({ db, transactions, events, vault, issuer, config, log, refresh: (id) => refreshed.push(id) }),
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
  assert.deepEqual(removed[0]!.data, { certificate: unlisted, names: ['a.example.test'], source: 'acme' });
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
