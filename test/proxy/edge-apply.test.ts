// Live reconfiguration: snapshots change listeners and backends without cutting established
// connections, bad snapshots are rejected whole, and the last good one survives a restart.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EdgeConfig } from '../../proxy/edge-config.js';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { holdPort } from '../support/port-holder.js';
import { connectClient, exchange, freePort } from '../support/tcp-client.js';
import { createTestEdge, endpoint, forEachIo } from '../support/test-edge.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];

forEachIo((io) => {
  test('a new snapshot adds and removes backends and endpoints without cutting established connections', async (t) => {
    const [a1, a2, b1] = [await startEchoBackend(t), await startEchoBackend(t), await startEchoBackend(t)];
    const [p1, p2] = [await freePort(), await freePort()];
    const edge = createTestEdge(t, io, { drainTimeoutMs: 60_000 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e1', bind: lo(p1), backends: [{ ...a1, id: 'a1' }] })] });
    const established = await connectClient(t, '127.0.0.1', p1);
    assert.equal((await established.roundTrip('v1')).toString(), 'v1');

    // v2: e1 moves from a1 to a2, and e2 appears.
    const v2: EdgeConfig = {
      version: 2,
      endpoints: [
        endpoint({ id: 'e1', bind: lo(p1), backends: [{ ...a2, id: 'a2' }] }),
        endpoint({ id: 'e2', bind: lo(p2), backends: [{ ...b1, id: 'b1' }] }),
      ],
    };
    assert.equal((await edge.apply(v2)).ok, true);
    assert.equal((await established.roundTrip('still on a1')).toString(), 'still on a1');
    assert.equal((await exchange('127.0.0.1', p1, 'new')).toString(), 'new');
    assert.equal((await exchange('127.0.0.1', p2, 'other')).toString(), 'other');
    assert.deepEqual([a1.accepted, a2.accepted, b1.accepted], [1, 1, 1]);
    const draining = edge.status().backends.find((b) => b.id === 'a1');
    assert.deepEqual([draining?.draining, draining?.active], [true, 1]);

    // v3: e1 is gone; its listener stops accepting, its established connection carries on.
    assert.equal((await edge.apply({ version: 3, endpoints: [v2.endpoints[1]!] })).ok, true);
    await assert.rejects(exchange('127.0.0.1', p1, 'refused'), { code: 'ECONNREFUSED' });
    assert.equal((await established.roundTrip('still alive')).toString(), 'still alive');
    assert.equal((await exchange('127.0.0.1', p2, 'e2 unchanged')).toString(), 'e2 unchanged');
    assert.deepEqual(edge.status().listeners, [{ address: '127.0.0.1', port: p2, endpoint: 'e2' }]);

    established.socket.end();
    await eventually(() => !edge.status().backends.some((b) => b.id === 'a1'), 'a1 to finish draining');
  });

  test('a removed backend keeps its connections until the drain timeout, then they are cut', async (t) => {
    const [a, b] = [await startEchoBackend(t), await startEchoBackend(t)];
    const port = await freePort();
    const edge = createTestEdge(t, io, { drainTimeoutMs: 100 });
    await edge.apply({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [{ ...a, id: 'a' }] })] });
    const client = await connectClient(t, '127.0.0.1', port);
    assert.equal((await client.roundTrip('x')).toString(), 'x');

    await edge.apply({ version: 2, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [{ ...b, id: 'b' }] })] });
    await client.closed;
    await eventually(() => a.open === 0 && edge.status().backends.length === 1, 'the drained backend to go');
  });

  test('a snapshot with a port held by another process is rejected and the old one keeps serving', async (t) => {
    const echo = await startEchoBackend(t);
    const [port, held, spare] = [await freePort(), await freePort(), await freePort()];
    await holdPort(t, '127.0.0.1', held);
    const edge = createTestEdge(t, io);
    const v1: EdgeConfig = { version: 1, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [echo] })] };
    await edge.apply(v1);

    const bad: EdgeConfig = {
      version: 2,
      endpoints: [...v1.endpoints, endpoint({ id: 'spare', bind: lo(spare), backends: [echo] }), endpoint({ id: 'taken', bind: lo(held), backends: [echo] })],
    };
    const result = await edge.apply(bad);
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.reason : '', new RegExp(`127\\.0\\.0\\.1:${held}.*EADDRINUSE`));
    assert.equal(edge.status().version, 1);
    assert.equal((await exchange('127.0.0.1', port, 'old config')).toString(), 'old config');
    // The listener this apply had already opened was closed again.
    await assert.rejects(exchange('127.0.0.1', spare, 'x'), { code: 'ECONNREFUSED' });

    const good = await edge.apply({ version: 2, endpoints: [...v1.endpoints, bad.endpoints[1]!] });
    assert.equal(good.ok, true);
    assert.equal((await exchange('127.0.0.1', spare, 'spare now')).toString(), 'spare now');
  });

  test('an invalid snapshot is rejected with its reason and an older version is ignored', async (t) => {
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const edge = createTestEdge(t, io);
    const v5: EdgeConfig = { version: 5, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [echo] })] };
    await edge.apply(v5);

    const duplicate = await edge.apply({
      version: 6,
      endpoints: [v5.endpoints[0]!, endpoint({ id: 'f', bind: lo(port), backends: [echo] })],
    });
    assert.deepEqual(duplicate, {
      ok: false,
      reason: `invalid snapshot: 127.0.0.1:${port} is bound by both endpoint "e" and endpoint "f"; only tls passthrough endpoints with distinct sni names may share an address:port`,
    });
    const stale = await edge.apply({ version: 5, endpoints: [] });
    assert.equal(stale.ok && !stale.applied && stale.version, 5);
    assert.equal(edge.status().version, 5);
    assert.equal((await exchange('127.0.0.1', port, 'still v5')).toString(), 'still v5');
  });

  test('the last good snapshot is written to the state file and a new edge starts from it', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-state-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const stateFile = join(dir, 'edge.json');
    const echo = await startEchoBackend(t);
    const port = await freePort();
    const config: EdgeConfig = { version: 7, endpoints: [endpoint({ id: 'e', bind: lo(port), backends: [echo] })] };

    const first = createTestEdge(t, io, { stateFile });
    assert.deepEqual(await first.loadState(), { ok: false, reason: `no state file at ${stateFile}` });
    await first.apply(config);
    assert.deepEqual(JSON.parse(await readFile(stateFile, 'utf8')), config);
    assert.equal((await first.apply({ version: 8, endpoints: [endpoint({ id: 'x', bind: lo(0), backends: [] })] })).ok, false);
    assert.deepEqual(JSON.parse(await readFile(stateFile, 'utf8')), config, 'a rejected snapshot is not written');
    assert.deepEqual(await readdir(dir), ['edge.json']);
    await first.close();

    const second = createTestEdge(t, io, { stateFile });
    assert.deepEqual(await second.loadState(), { ok: true, applied: true, version: 7 });
    assert.equal((await exchange('127.0.0.1', port, 'restored')).toString(), 'restored');
  });
});
