// The isolation of issue 9 in a real `pier edge` with two cluster workers (the listening sockets
// belong to the primary): socat holds one endpoint's port, as in the issue; the edge still starts,
// serves the other endpoints of this and later snapshots, reports the failed one in /status,
// serves it once socat is gone without a new snapshot, and stops retrying when it is removed.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { squatPort } from '../support/squatter.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { endpoint, forEachIo } from '../support/test-edge.js';
import { startEdgeProcess } from './edge-process.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];

/** Polls (bounded: 150 × 100 ms) until `check` resolves true. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 150; i++) {
    if (await check().catch(() => false)) return;
    await delay(100);
  }
  assert.fail(`gave up waiting for ${what}`);
}

forEachIo((_io, mode) => {
  test('a port held by socat fails one endpoint of a two-worker edge; the others serve now and later, and it serves once socat is gone', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-iso-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const echo = await startEchoBackend(t);
    const [pa, pb, held, later] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const squatter = await squatPort(t, held);
    const a = endpoint({ id: 'ep_a', bind: lo(pa), backends: [echo], options: { name: 'a/9000' } });
    const s = endpoint({ id: 'ep_s', bind: lo(held), backends: [echo], options: { name: 'squat/21030', revision: 4 } });
    const b = endpoint({ id: 'ep_b', bind: lo(pb), backends: [echo] });
    const file = join(dir, 'edge.json');
    const write = (config: EdgeConfig) => writeFile(file, JSON.stringify(config));
    await write({ version: 1, endpoints: [a, s] });

    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '2', '--data-dir', join(dir, 'data')]);
    const status = await edge.status();
    assert.equal(status.version, 1, 'the snapshot applied although one port is taken');
    assert.equal(status.workers.length, 2);
    const failed = status.endpoints.find((e) => e.id === 'ep_s');
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.revision, 4);
    assert.equal(failed?.listeners[0]?.error?.code, 'EADDRINUSE');
    assert.match(failed?.listeners[0]?.error?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${held}`));
    assert.equal(status.endpoints.find((e) => e.id === 'ep_a')?.state, 'serving');
    // Several connections, so both workers are likely to take some.
    for (let i = 0; i < 6; i++) assert.equal((await exchange('127.0.0.1', pa, `a ${i}`)).toString(), `a ${i}`);

    await write({ version: 2, endpoints: [a, s, b] });
    edge.child.kill('SIGHUP');
    await until('version 2', async () => (await edge.status()).version === 2);
    assert.equal((await exchange('127.0.0.1', pb, 'b serves')).toString(), 'b serves');
    assert.equal((await edge.status()).endpoints.find((e) => e.id === 'ep_s')?.state, 'failed');

    await squatter.release();
    await until('the squatted endpoint to serve', async () => (await exchange('127.0.0.1', held, 'ours')).toString() === 'ours');
    await until('/status to say so', async () => (await edge.status()).endpoints.every((e) => e.state === 'serving'));
    for (let i = 0; i < 6; i++) assert.equal((await exchange('127.0.0.1', held, `s ${i}`)).toString(), `s ${i}`);

    // Another squatted endpoint, then dropped: its retries stop.
    const second = await squatPort(t, later);
    await write({ version: 3, endpoints: [a, s, b, endpoint({ id: 'ep_l', bind: lo(later), backends: [echo] })] });
    edge.child.kill('SIGHUP');
    await until('version 3 with ep_l failed', async () => {
      const now = await edge.status();
      return now.version === 3 && now.endpoints.find((e) => e.id === 'ep_l')?.state === 'failed';
    });
    await write({ version: 4, endpoints: [a, s, b] });
    edge.child.kill('SIGHUP');
    await until('version 4', async () => (await edge.status()).version === 4);
    await second.release();
    // Past the first retries (1 s, then 2 s): nothing binds the port again.
    await delay(3500);
    await assert.rejects(exchange('127.0.0.1', later, 'x'), { code: 'ECONNREFUSED' });
    assert.match(edge.stderr(), /bind retries stop/);
    assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
  });
});
