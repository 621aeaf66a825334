// The keyed work queue: one run per key at a time, a rerun for keys enqueued meanwhile, delayed
// enqueues coalescing to the earliest, and close() dropping what is still pending.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createWorkQueue } from '../../../api/scheduler/work-queue.js';

const silent = pino({ level: 'silent' });

/** A handler that records calls and, per key, waits until the test lets the current run finish. */
function gatedHandler() {
  const calls: string[] = [];
  const gates = new Map<string, (() => void)[]>();
  let active = 0;
  let maxActive = 0;
  const handler = async (key: string) => {
    calls.push(key);
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise<void>((resolve) => gates.set(key, [...(gates.get(key) ?? []), resolve]));
    active--;
  };
  /** Lets the oldest waiting run of `key` finish; false when none waits. */
  const release = (key: string): boolean => {
    const waiting = gates.get(key);
    const next = waiting?.shift();
    next?.();
    return next !== undefined;
  };
  return { calls, handler, release, maxActive: () => maxActive };
}

/** Lets queued promise callbacks run (handlers finishing, reruns starting). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('an enqueued key runs once and idle() resolves after it', async (t) => {
  const h = gatedHandler();
  const q = createWorkQueue(h.handler, silent);
  t.after(() => q.close());
  q.enqueue('a');
  assert.deepEqual(h.calls, ['a']);
  const idle = q.idle();
  h.release('a');
  await idle;
  assert.deepEqual(h.calls, ['a']);
});

test('a key enqueued while it runs runs once more afterwards, however often it was enqueued', async (t) => {
  const h = gatedHandler();
  const q = createWorkQueue(h.handler, silent);
  t.after(() => q.close());
  q.enqueue('a');
  q.enqueue('a');
  q.enqueue('a');
  q.enqueue('a');
  assert.deepEqual(h.calls, ['a'], 'no second run while the first is running');
  h.release('a');
  await settle();
  assert.deepEqual(h.calls, ['a', 'a']);
  h.release('a');
  await q.idle();
  assert.deepEqual(h.calls, ['a', 'a']);
  assert.equal(h.maxActive(), 1);
});

test('different keys run at the same time', async (t) => {
  const h = gatedHandler();
  const q = createWorkQueue(h.handler, silent);
  t.after(() => q.close());
  q.enqueue('a');
  q.enqueue('b');
  assert.deepEqual(h.calls, ['a', 'b']);
  assert.equal(h.maxActive(), 2);
  h.release('b');
  h.release('a');
  await q.idle();
});

test('at most `concurrency` keys run at once; the others wait their turn in order', async (t) => {
  const h = gatedHandler();
  const q = createWorkQueue(h.handler, silent, { concurrency: 2 });
  t.after(() => q.close());
  for (const key of ['a', 'b', 'c', 'd']) q.enqueue(key);
  q.enqueue('c');
  assert.deepEqual(h.calls, ['a', 'b']);
  assert.deepEqual(q.stats(), { running: 2, waiting: 2, delayed: 0 });
  assert.ok(q.has('d'));
  h.release('b');
  await settle();
  assert.deepEqual(h.calls, ['a', 'b', 'c']);
  // A key enqueued again while it runs goes behind the keys that were waiting.
  q.enqueue('a');
  h.release('a');
  await settle();
  assert.deepEqual(h.calls, ['a', 'b', 'c', 'd']);
  h.release('c');
  await settle();
  assert.deepEqual(h.calls, ['a', 'b', 'c', 'd', 'a']);
  h.release('d');
  h.release('a');
  await q.idle();
  assert.equal(h.maxActive(), 2);
  assert.deepEqual(q.stats(), { running: 0, waiting: 0, delayed: 0 });
});

test('a failing run is logged with its key and the queue keeps working', async (t) => {
  const lines: { msg: string; key: string; err?: { message: string } }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  let n = 0;
  const q = createWorkQueue(async () => {
    n++;
    if (n === 1) throw new Error('boom');
  }, pino(sink));
  t.after(() => q.close());
  q.enqueue('a');
  await q.idle();
  q.enqueue('a');
  await q.idle();
  assert.equal(n, 2);
  await settle();
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.msg, 'work item failed');
  assert.equal(lines[0]?.key, 'a');
  assert.equal(lines[0]?.err?.message, 'boom');
});

test('a delayed key runs when its delay passes', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const calls: string[] = [];
  const q = createWorkQueue(async (key) => void calls.push(key), silent);
  t.after(() => q.close());
  q.enqueue('a', 1_000);
  t.mock.timers.tick(999);
  assert.deepEqual(calls, []);
  t.mock.timers.tick(1);
  assert.deepEqual(calls, ['a']);
});

const coalescing: { name: string; delays: number[]; runsAt: number }[] = [
  { name: 'an earlier delay replaces a later one', delays: [60_000, 500], runsAt: 500 },
  { name: 'a later delay leaves the earlier one', delays: [500, 60_000], runsAt: 500 },
  { name: 'the same delay twice runs once', delays: [500, 500], runsAt: 500 },
];

for (const c of coalescing) {
  test(`delayed enqueues of one key coalesce: ${c.name}`, async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const calls: string[] = [];
    const q = createWorkQueue(async (key) => void calls.push(key), silent);
    t.after(() => q.close());
    for (const d of c.delays) q.enqueue('a', d);
    t.mock.timers.tick(c.runsAt - 1);
    assert.deepEqual(calls, []);
    t.mock.timers.tick(1);
    assert.deepEqual(calls, ['a']);
    t.mock.timers.tick(120_000);
    await q.idle();
    assert.deepEqual(calls, ['a'], 'runs once in all');
  });
}

test('an enqueue without delay runs at once even when a delayed one is pending', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const calls: string[] = [];
  const q = createWorkQueue(async (key) => void calls.push(key), silent);
  t.after(() => q.close());
  q.enqueue('a', 1_000);
  q.enqueue('a');
  assert.deepEqual(calls, ['a']);
  await q.idle();
  t.mock.timers.tick(1_000);
  assert.deepEqual(calls, ['a', 'a'], 'the delayed one still runs');
});

test('close() waits for running work, drops pending delays and ignores new keys', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const h = gatedHandler();
  const q = createWorkQueue(h.handler, silent);
  q.enqueue('a');
  q.enqueue('a');
  q.enqueue('b', 1_000);
  let closed = false;
  const closing = q.close().then(() => (closed = true));
  await settle();
  assert.equal(closed, false, 'close waits for the running key');
  h.release('a');
  await closing;
  t.mock.timers.tick(10_000);
  q.enqueue('c');
  q.enqueue('d', 10);
  t.mock.timers.tick(10_000);
  await settle();
  assert.deepEqual(h.calls, ['a'], 'no rerun, no delayed key, no new key after close');
});
