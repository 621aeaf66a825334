// The reconcile lock survives its PostgreSQL session dying (a restart, a killed backend): releasing
// it settles, the process keeps running (postgres.js 3.4.9 threw from a timer when a query went
// to a reserved connection whose socket had closed, porsager/postgres#1154), and the lock can be
// taken again on a new session. PostgreSQL only: PGlite has no sessions to lose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import postgres from 'postgres';
import { setTimeout as delay } from 'node:timers/promises';
import { openDatabase } from '../../db/database.js';
import { createTestDbUrl } from '../support/test-db.js';

function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([work, delay(ms, null, { ref: false }).then(() => Promise.reject(new Error(`${what} did not settle in ${ms} ms`)))]);
}

test('a held advisory lock whose session is killed is released without a crash, and can be taken again', async (t) => {
  const url = await createTestDbUrl(t);
  if (!url) {
    t.skip('needs DATABASE_URL (PostgreSQL): an embedded database has no session to kill');
    return;
  }
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));

  const database = await openDatabase({ url, dataDir: 'memory://' });
  t.after(() => database.close());
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  t.after(() => admin.end({ timeout: 5 }));

  const held = await database.locks.tryLock('pier:reconcile:app_1');
  assert.ok(held);
  assert.equal(await database.locks.tryLock('pier:reconcile:app_1'), null, 'not taken twice in one process');

  const holders = await admin<{ pid: number }[]>`select pid from pg_locks where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`;
  assert.equal(holders.length, 1, 'one session holds it');
  const pid = holders[0]?.pid as number;
  await admin`select pg_terminate_backend(${pid})`;
  for (let i = 0; i < 100; i++) {
    const [row] = await admin<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where pid = ${pid}`;
    if (row?.n === 0) break;
    await delay(50);
  }
  await delay(200);

  // The unlock goes to a session that is gone: it must settle (the lock died with the session).
  await within(held.release().catch(() => undefined), 15_000, 'releasing the lock');
  assert.ok(held.signal.aborted, 'the holder heard that its lock died');
  const again = await within(database.locks.tryLock('pier:reconcile:app_1'), 15_000, 'taking the lock again');
  assert.ok(again, 'the lock is free again, on a new session');
  await again.release();
  await delay(100);
  assert.deepEqual(uncaught.map(String), [], 'no exception escaped to the process');
});
