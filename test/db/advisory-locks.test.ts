// The reconcile locks keep working when their connection stops answering: a lock query that does
// not settle in time fails, the lock client is replaced, and the next lock goes through a new
// connection. The fault is real: a TCP relay between the client and PostgreSQL that stops
// forwarding on the connections it has (as a connection postgres.js can no longer write on
// behaves). PostgreSQL only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import postgres from 'postgres';
import { createAdvisoryLocks } from '../../db/advisory-locks.js';
import { createTestDbUrl } from '../support/test-db.js';

/** A relay to `target` on a free loopback port; freeze() stops every connection it has so far. */
async function startRelay(target: URL): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const pairs: [Socket, Socket][] = [];
  const server = createServer((downstream) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    const end = (): void => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('error', end);
    upstream.on('error', end);
    pairs.push([downstream, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    freeze() {
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
    async close() {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test('a lock client whose connection stops answering is replaced, and locks work again', async (t) => {
  const url = await createTestDbUrl(t);
  if (!url) {
    t.skip('needs DATABASE_URL (PostgreSQL)');
    return;
  }
  const target = new URL(url);
  const relay = await startRelay(target);
  t.after(() => relay.close());
  const viaRelay = new URL(url);
  viaRelay.hostname = '127.0.0.1';
  viaRelay.port = String(relay.port);

  const replaced: unknown[] = [];
  const locks = createAdvisoryLocks({
    connect: () => postgres(viaRelay.toString(), { max: 1, onnotice: () => {}, fetch_types: false }),
    timeoutMs: 500,
    onReplace: (reason) => void replaced.push(reason),
  });
  t.after(() => locks.close().catch(() => undefined));

  const release = await locks.tryLock('pier:reconcile:app_1');
  assert.ok(release);
  relay.freeze();

  // The unlock goes to a connection that no longer answers: it fails in bounded time...
  await assert.rejects(release(), /did not settle within 500 ms/);
  assert.equal(replaced.length, 1, 'the client was replaced');
  // ...and the lock client works again, on a new connection (the old session, and its lock, end
  // with the old connection; here the frozen relay still holds it, so take another key).
  const other = await locks.tryLock('pier:reconcile:app_2');
  assert.ok(other, 'a new lock through a new connection');
  await other();
  assert.equal(replaced.length, 1);
});
