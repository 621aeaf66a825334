// The periodic collection never ends the server: a failing run is logged, recorded as an event
// and retried sooner; a run that removed images records what it removed; close stops it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GcResult } from '../../../api/registry/registry-gc.js';
import { startRegistryGcTask } from '../../../api/registry/registry-gc-task.js';
import { captureLog } from '../../support/log-capture.js';

test('a failing collection is logged, recorded and retried; a successful one records what it removed', async () => {
  // The task's timers do not hold the process open (a server's do not); this one does, meanwhile.
  const keepAlive = setInterval(() => {}, 1_000);
  const events: { type: string; message: string }[] = [];
  const log = captureLog();
  let calls = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const result: GcResult = { dryRun: false, registry: 'local', removed: [{ image: 'h/o/a@sha256:1', repository: 'o/a', digest: 'sha256:1', reason: 'past-retention', releases: ['a v1'], bytes: 10 }], kept: 2, bytesFreed: 10, blobsCollected: true };
  const task = startRegistryGcTask({
    intervalMs: 20,
    retryMs: 5,
    log: log.log,
    run: async () => {
      calls++;
      if (calls <= 2) throw Object.assign(new Error('the image registry at http://127.0.0.1:1 does not answer'), { code: 'E_REGISTRY_UNAVAILABLE' });
      if (calls === 3) done();
      return result;
    },
    onEvent: (e) => events.push(e),
  });
  await finished;
  task.close();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events.map((e) => e.type), ['registry.gc_failed', 'registry.gc_failed', 'registry.gc']);
  assert.match(events[0]!.message, /does not answer; retrying in/);
  assert.match(events[2]!.message, /removed 1 image and freed 10 bytes/);
  assert.equal(log.messages('registry garbage collection failed; retrying').length, 2);
  const after = calls;
  await new Promise((r) => setTimeout(r, 60));
  clearInterval(keepAlive);
  assert.equal(calls, after, 'closed: no more runs');
});
