// Stopping the server: SIGTERM ends it cleanly even while clients hold streams open (an edge
// following the config feed, a `pier events -f`), instead of waiting on them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPierServer } from '../support/pier-process.js';

test('SIGTERM stops the server cleanly while watch and event streams are open', async (t) => {
  const server = await startPierServer(t, {}, { args: ['--role', 'api'] });
  const headers = { authorization: `Bearer ${server.token}` };
  const watch = await fetch(`${server.apiUrl}/v1/edge/watch`, { headers });
  assert.equal(watch.status, 200);
  const reader = watch.body?.getReader();
  const first = await reader?.read();
  assert.match(Buffer.from(first?.value ?? []).toString(), /event: config/);

  await server.stop();
  // stop() sends SIGTERM and falls back to SIGKILL after 15 s: a clean stop exits 0 by itself.
  assert.deepEqual(server.ended(), { code: 0, signal: null }, server.stderr().slice(-2000));
  await reader?.cancel().catch(() => undefined);
});
