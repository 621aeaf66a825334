// Advisory locks on PostgreSQL live on one session of their own: holding many never takes a
// connection from the query pool, and losing that session (killed, or silent) loses every lock
// at once — each holder hears it through its AbortSignal — after which locks can be taken again.
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { createPostgresLocks, LockLostError, type HeldLock } from '../../db/advisory-locks.js';
import { LOCK_SESSION_NAME, openDatabase, POOL_SIZE } from '../../db/database.js';
import { createTestDbUrl } from '../support/test-db.js';

async function postgresOnly(t: TestContext): Promise<string | null> {
  const url = await createTestDbUrl(t);
  if (!url) t.diagnostic('needs PostgreSQL: the embedded database keeps its locks in process; runs in the DATABASE_URL pass');
  return url ?? null;
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for: ${what}`);
}

test('held locks take no connection from the query pool, however many there are', async (t) => {
  const url = await postgresOnly(t);
  if (!url) return;
  const database = await openDatabase({ url, dataDir: 'memory://' });
  t.after(() => database.close());
  const held: HeldLock[] = [];
  for (let i = 0; i < POOL_SIZE * 3; i++) {
    const lock = await database.locks.tryLock(`pier:reconcile:app_${i}`);
    assert.ok(lock);
    held.push(lock);
  }
  // Every pool connection busy at once, while all those locks are held.
  await Promise.all(Array.from({ length: POOL_SIZE * 2 }, () => database.db.execute(sql`select pg_sleep(0.05)`)));
  const sessions = (await database.db.execute(sql`select application_name as name, count(*)::int as n from pg_stat_activity where datname = current_database() group by 1`)) as unknown as { name: string; n: number }[];
  assert.equal(sessions.find((s) => s.name === LOCK_SESSION_NAME)?.n, 1, JSON.stringify(sessions));
  for (const lock of held) await lock.release();
  assert.ok(held.every((l) => !l.signal.aborted));
});

test('a killed lock session aborts every lock at once; they can be taken again, by another server meanwhile too', async (t) => {
  const url = await postgresOnly(t);
  if (!url) return;
  const lost: string[] = [];
  const a = await openDatabase({ url, dataDir: 'memory://', onLocksLost: (why, n) => void lost.push(`${n}: ${why}`) });
  t.after(() => a.close());
  const b = await openDatabase({ url, dataDir: 'memory://' });
  t.after(() => b.close());
  const one = await a.locks.tryLock('pier:reconcile:one');
  const two = await a.locks.tryLock('pier:reconcile:two');
  assert.ok(one && two);
  assert.equal(await b.locks.tryLock('pier:reconcile:one'), null);

  await b.db.execute(sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${LOCK_SESSION_NAME} and datname = current_database() and pid <> pg_backend_pid() and pid in (select pid from pg_locks where locktype = 'advisory')`);
  await until('both locks lost', () => one.signal.aborted && two.signal.aborted);
  assert.ok(one.signal.reason instanceof LockLostError, String(one.signal.reason));
  assert.deepEqual(lost, ['2: the lock session closed']);

  // The other server can take them now; this one gets them back once that one lets go.
  const other = await b.locks.tryLock('pier:reconcile:one');
  assert.ok(other, 'the lock was free once its session died');
  assert.equal(await a.locks.tryLock('pier:reconcile:one'), null);
  await other.release();
  const again = await a.locks.tryLock('pier:reconcile:one');
  assert.ok(again && !again.signal.aborted, 'taken again on a new session');
  await one.release(); // releasing a lost lock is harmless and does not release the new one
  assert.equal(await b.locks.tryLock('pier:reconcile:one'), null);
  await again.release();
});

test('a lock session that stops answering is given up: its locks abort and a new session takes them', async (t) => {
  const url = await postgresOnly(t);
  if (!url) return;
  const proxy = await startFreezableProxy(t, new URL(url));
  const through = new URL(url);
  through.host = `127.0.0.1:${proxy.port}`;
  const lost: string[] = [];
  const locks = createPostgresLocks({
    connect: (onClose) => postgres(through.toString(), { max: 1, max_lifetime: 0, idle_timeout: 0, connect_timeout: 5, onnotice: () => {}, onclose: onClose, connection: { application_name: 'pier-locks-test' } }),
    heartbeatMs: 100,
    heartbeatTimeoutMs: 300,
    onLost: (why) => void lost.push(why),
  });
  t.after(() => locks.close());
  const held = await locks.tryLock('pier:reconcile:silent');
  assert.ok(held);
  proxy.freeze();
  await until('the lock lost', () => held.signal.aborted);
  assert.match(lost[0] ?? '', /did not answer within 300 ms/);
  // The partition ends: the server notices the old session is gone (its keepalives would) and
  // lets its lock go; the new session takes it.
  proxy.heal();
  await until('the lock taken again', async () => {
    const again = await locks.tryLock('pier:reconcile:silent').catch(() => null);
    if (again) await again.release();
    return again !== null;
  });
});

function hold(a: Socket, b: Socket): void {
  a.unpipe(b);
  b.unpipe(a);
  a.pause();
  b.pause();
}

/** A TCP relay to PostgreSQL whose existing connections can be frozen (no bytes either way). */
async function startFreezableProxy(t: TestContext, target: URL): Promise<{ port: number; freeze(): void; heal(): void }> {
  const pairs: [Socket, Socket][] = [];
  let frozen = false;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
    pairs.push([client, upstream]);
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
    if (frozen) hold(client, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    server.close();
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) hold(a, b);
    },
    /** Frozen connections are cut (as a server's keepalive ends them); new ones flow. */
    heal() {
      frozen = false;
      for (const [a, b] of pairs.splice(0)) {
        a.destroy();
        b.destroy();
      }
    },
  };
}
