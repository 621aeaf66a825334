// A malformed engine path (an empty container id) makes the engine answer with a redirect; that is
// an ordinary error of the call, never a crash of the process (docker-modem followed the redirect
// to the host "containers", whose DNS error had no listener).
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { pino } from 'pino';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { requireDocker } from '../../support/images.js';

test('an engine call with an empty container id fails as a call, and nothing escapes to the process', async (t) => {
  if (!(await requireDocker(t))) return;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  t.after(() => process.off('uncaughtException', onUncaught));

  const runtime = createDockerRuntime({ log: pino({ level: 'silent' }) });
  await assert.rejects(runtime.exec('', ['true'], { timeoutMs: 5_000 }), (err: Error & { code?: string }) => {
    assert.match(err.code ?? '', /^E_/);
    return true;
  });
  await assert.rejects(runtime.stop('', 1));
  // The redirected request, had it been made, fails on its DNS lookup a moment later.
  await delay(1_000);
  assert.deepEqual(uncaught.map(String), []);
});
