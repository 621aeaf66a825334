// SIGUSR2 replaces the workers of a `pier edge` cluster one by one: each new worker takes the
// primary's shared listening sockets and the current snapshot before the old one drains, so a
// client loop running through five rolls sees no refused and no reset connection, and a
// connection held across them keeps working.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startEchoBackend } from '../support/echo-backend.js';
import { connectClient, exchange, freePortOnBoth } from '../support/tcp-client.js';
import { endpoint, forEachIo } from '../support/test-edge.js';
import { sample, startEdgeProcess, type EdgeProcess } from './edge-process.js';

/** Polls (bounded: 200 × 100 ms) until `check` resolves true. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check().catch(() => false)) return;
    await delay(100);
  }
  assert.fail(`gave up waiting for ${what}`);
}

/** Exchanges on `host:port` back to back until stopped; counts outcomes by error code. */
function probeLoop(host: string, port: number): { stop(): Promise<Map<string, number>> } {
  const outcomes = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    // Bounded: at most 20 000 probes even if never stopped.
    for (let i = 0; running && i < 20_000; i++) {
      const payload = `probe ${i}\n`;
      let outcome = 'ok';
      try {
        const reply = (await exchange(host, port, payload)).toString();
        if (reply !== payload) outcome = `wrong reply ${JSON.stringify(reply.slice(0, 40))}`;
      } catch (err) {
        outcome = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      await delay(5);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return outcomes;
    },
  };
}

async function roll(edge: EdgeProcess): Promise<void> {
  const before = (await edge.status()).workers.map((w) => w.pid);
  edge.child.kill('SIGUSR2');
  await until('every worker replaced', async () => {
    const now = await edge.status();
    return now.workers.length === before.length && now.workers.every((w) => !before.includes(w.pid) && w.version === now.version);
  });
}

forEachIo((_io, mode) => {
  test('five rolling restarts of two workers refuse and reset no connection', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-roll-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const echo = await startEchoBackend(t);
    const port = await freePortOnBoth();
    const file = join(dir, 'edge.json');
    const bind = [{ address: '127.0.0.1', port }, { address: '::1', port }];
    await writeFile(file, JSON.stringify({ version: 1, endpoints: [endpoint({ id: 'echo', bind, backends: [echo] })] }));
    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '2', '--data-dir', join(dir, 'data'), '--drain-timeout', '60']);
    const held = await connectClient(t, '127.0.0.1', port);
    assert.equal((await held.roundTrip('before\n')).toString(), 'before\n');

    const v4 = probeLoop('127.0.0.1', port);
    const v6 = probeLoop('::1', port);
    for (let i = 0; i < 5; i++) await roll(edge);
    const outcomes = [await v4.stop(), await v6.stop()];
    for (const counts of outcomes) {
      const failures = [...counts].filter(([outcome]) => outcome !== 'ok');
      assert.deepEqual(failures, [], `every probe answered: ${JSON.stringify([...counts])}`);
      assert.ok((counts.get('ok') ?? 0) > 10, 'the loops ran through the rolls');
    }
    // The held connection is on a worker that drains: it still works while it lasts.
    assert.equal((await held.roundTrip('after five rolls\n')).toString(), 'after five rolls\n');
    assert.equal(sample(await edge.metrics(), 'pier_edge_worker_restarts_total'), 0, 'rolls are not restarts after a death');
    assert.match(edge.stderr(), /edge workers rolled/);
    held.socket.end();
    assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
  });

  test('SIGUSR2 to a one-process edge says it cannot roll, and it keeps serving', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-roll-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const echo = await startEchoBackend(t);
    const port = await freePortOnBoth();
    const file = join(dir, 'edge.json');
    await writeFile(file, JSON.stringify({ version: 1, endpoints: [endpoint({ id: 'echo', bind: [{ address: '127.0.0.1', port }], backends: [echo] })] }));
    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '1', '--data-dir', join(dir, 'data')]);
    edge.child.kill('SIGUSR2');
    await until('the refusal to be logged', async () => /edge workers not rolled/.test(edge.stderr()));
    assert.match(edge.stderr(), /no cluster/);
    assert.equal((await exchange('127.0.0.1', port, 'still\n')).toString(), 'still\n');
    assert.equal(await edge.stop('SIGTERM'), 0);
  });
});
