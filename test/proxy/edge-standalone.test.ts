// `pier edge --config FILE` as a real process with two cluster workers: bytes on IPv4 and IPv6,
// SIGHUP re-reads the file, /metrics and /status answer, SIGTERM drains and exits 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startEchoBackend } from '../support/echo-backend.js';
import { connectClient, exchange, freePortOnBoth } from '../support/tcp-client.js';
import { forEachIo } from '../support/test-edge.js';
import { sample, startEdgeProcess } from './edge-process.js';

function snapshot(version: number, port: number, backend: { id: string; port: number }): string {
  return JSON.stringify({
    version,
    endpoints: [
      {
        id: `echo/${port}`,
        app: 'echo',
        bind: [
          { address: '127.0.0.1', port },
          { address: '::1', port },
        ],
        proxyProtocol: 'none',
        backends: [{ id: backend.id, address: '127.0.0.1', port: backend.port }],
      },
    ],
  });
}

/** Polls (bounded: 100 × 100 ms) until `check` resolves true. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check().catch(() => false)) return;
    await delay(100);
  }
  assert.fail(`gave up waiting for ${what}`);
}

forEachIo((_io, mode) => {
  test('a standalone edge with two workers proxies on IPv4 and IPv6, switches backends on SIGHUP, reports metrics and drains on SIGTERM', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const a = await startEchoBackend(t);
    const b = await startEchoBackend(t);
    const port = await freePortOnBoth();
    const file = join(dir, 'edge.json');
    await writeFile(file, snapshot(1, port, { id: 'a', port: a.port }));

    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '2', '--data-dir', join(dir, 'data'), '--drain-timeout', '10']);
    const status = await edge.status();
    assert.equal(status.version, 1);
    assert.equal(status.io, mode, 'the workers run the i/o asked for with --io');
    assert.equal(status.workers.length, 2);
    assert.notEqual(status.workers[0]?.pid, status.workers[1]?.pid);
    assert.deepEqual(status.listeners.map((l) => l.address).sort(), ['127.0.0.1', '::1']);

    assert.equal((await exchange('127.0.0.1', port, 'over IPv4\n')).toString(), 'over IPv4\n');
    assert.equal((await exchange('::1', port, 'over IPv6\n')).toString(), 'over IPv6\n');
    assert.equal(a.accepted, 2);

    // A held connection shows in the metrics, and must survive the reload and the drain.
    const held = await connectClient(t, '127.0.0.1', port);
    assert.equal((await held.roundTrip('held\n')).toString(), 'held\n');
    // Summed over both workers: 3 connections, whichever worker accepted each.
    const backendA = `{endpoint="echo/${port}",backend="a",address="127.0.0.1",port="${a.port}"}`;
    const endpointLabels = `{endpoint="echo/${port}",app="echo"}`;
    let metrics = await edge.metrics();
    assert.equal(sample(metrics, 'pier_edge_backend_connections_active', backendA), 1);
    assert.equal(sample(metrics, 'pier_edge_backend_connections_total', backendA), 3);
    assert.equal(sample(metrics, 'pier_edge_endpoint_connections_total', endpointLabels), 3);
    assert.ok((sample(metrics, 'pier_edge_endpoint_bytes_in_total', endpointLabels) ?? 0) >= 'over IPv4\nover IPv6\nheld\n'.length);
    assert.equal(sample(metrics, 'pier_edge_config_applies_total', '{result="applied"}'), 1);

    await writeFile(file, snapshot(2, port, { id: 'b', port: b.port }));
    edge.child.kill('SIGHUP');
    await until('version 2 in /status', async () => (await edge.status()).version === 2);
    assert.equal((await exchange('127.0.0.1', port, 'to b\n')).toString(), 'to b\n');
    assert.equal((await exchange('::1', port, 'to b too\n')).toString(), 'to b too\n');
    assert.equal(b.accepted, 2);
    assert.equal(a.accepted, 3, 'no new connection reached the removed backend');
    assert.equal((await held.roundTrip('still here\n')).toString(), 'still here\n');

    metrics = await edge.metrics();
    assert.equal(sample(metrics, 'pier_edge_config_version'), 2);
    assert.equal(sample(metrics, 'pier_edge_config_applies_total', '{result="applied"}'), 2);
    assert.equal(sample(metrics, 'pier_edge_backend_draining', backendA), 1);
    assert.equal(sample(metrics, 'pier_edge_endpoint_connections_total', endpointLabels), 5);
    assert.equal(sample(metrics, 'pier_edge_workers'), 2);

    // A worker that dies is replaced and catches up with the served snapshot.
    const victim = (await edge.status()).workers.find((w) => w.connections === 0);
    assert.ok(victim);
    process.kill(victim.pid, 'SIGKILL');
    await until('a replacement worker on version 2', async () => {
      const s = await edge.status();
      return s.workers.length === 2 && !s.workers.some((w) => w.pid === victim.pid) && s.workers.every((w) => w.version === 2);
    });
    assert.equal(sample(await edge.metrics(), 'pier_edge_worker_restarts_total'), 1);
    assert.equal((await exchange('127.0.0.1', port, 'after restart\n')).toString(), 'after restart\n');

    // SIGTERM: the listeners close at once, the held connection carries on until it ends.
    const exited = edge.stop('SIGTERM');
    await until('the listener to close', async () => {
      try {
        await exchange('127.0.0.1', port, 'x');
        return false;
      } catch {
        return true;
      }
    });
    assert.equal((await held.roundTrip('draining\n')).toString(), 'draining\n');
    held.socket.end();
    assert.equal(await exited, 0, edge.stderr().slice(-2000));
  });

  test('a standalone edge with one worker keeps serving the old snapshot when the file becomes invalid', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const a = await startEchoBackend(t);
    const port = await freePortOnBoth();
    const file = join(dir, 'edge.json');
    await writeFile(file, snapshot(1, port, { id: 'a', port: a.port }));
    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '1', '--data-dir', join(dir, 'data'), '--watch']);

    await writeFile(file, '{"version": 2, "endpoints": [ broken');
    edge.child.kill('SIGHUP');
    await until('the rejection to be counted', async () => (sample(await edge.metrics(), 'pier_edge_config_applies_total', '{result="rejected"}') ?? 0) >= 1);
    assert.equal((await edge.status()).version, 1);
    assert.equal((await exchange('::1', port, 'still v1\n')).toString(), 'still v1\n');

    // --watch: a fixed file is picked up without a signal.
    await writeFile(file, snapshot(3, port, { id: 'a2', port: a.port }));
    await until('version 3 from the file watcher', async () => (await edge.status()).version === 3);
    assert.equal(await edge.stop('SIGINT'), 0);
  });
});
