// File descriptors (issue 11, defect 5), on a real `pier edge` started under `ulimit -n`: it raises
// its soft limit to the hard one at start, and with a hard limit of 256 a storm of 1000 held
// connections on one endpoint leaves another endpoint served, and nothing is silent: every storm
// client is served or closed at once, each closed one counted, with a log line at most once a second.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { endpoint, forEachIo } from '../support/test-edge.js';
import { sample, startEdgeProcess } from './edge-process.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];

async function hardLimit(): Promise<number> {
  const line = (await readFile('/proc/self/limits', 'utf8')).split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line?.slice('Max open files'.length).trim().split(/\s+/)[1]);
}

type Outcome = 'served' | 'closed';

/** Connects, sends one byte, and settles on its echo (held open) or on a close/reset; bounded 30 s. */
function stormClient(port: number, held: net.Socket[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('closed');
    }, 30_000);
    const settle = (outcome: Outcome): void => {
      clearTimeout(timer);
      resolve(outcome);
    };
    socket.once('connect', () => socket.write('x'));
    socket.once('data', () => {
      held.push(socket);
      settle('served');
    });
    socket.once('error', () => settle('closed'));
    socket.once('close', () => settle('closed'));
  });
}

forEachIo((_io, mode) => {
  test('started with a soft open-files limit of 256, every edge process runs at the hard limit and says so', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-fd-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const echo = await startEchoBackend(t);
    const file = join(dir, 'edge.json');
    await writeFile(file, JSON.stringify({ version: 1, endpoints: [endpoint({ id: 'e', bind: lo(await freePort()), backends: [echo] })] }));
    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '2', '--data-dir', join(dir, 'data')], {}, [], { ulimit: { nofile: 256, softOnly: true } });
    const hard = await hardLimit();
    assert.ok(hard > 256, 'the test needs a hard limit above 256');
    assert.match(edge.stderr(), new RegExp(`"soft":${hard},"hard":${hard},"msg":"open files limit is already the hard limit"`));
    const status = await edge.status();
    assert.deepEqual(status.descriptors.map((d) => d.limit), [hard, hard]);
    assert.equal(sample(await edge.metrics(), 'pier_edge_descriptors_limit'), hard);
  });

  test('with ulimit -n 256, a storm of 1000 connections on one endpoint leaves another served, and every refused client is counted and logged', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-fd-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const stormBackend = await startEchoBackend(t);
    const otherBackend = await startEchoBackend(t);
    const [stormPort, otherPort] = [await freePort(), await freePort()];
    const file = join(dir, 'edge.json');
    await writeFile(
      file,
      JSON.stringify({
        version: 1,
        endpoints: [endpoint({ id: 'storm', bind: lo(stormPort), backends: [stormBackend] }), endpoint({ id: 'other', bind: lo(otherPort), backends: [otherBackend] })],
      }),
    );
    const edge = await startEdgeProcess(t, ['--io', mode, '--config', file, '--workers', '1', '--data-dir', join(dir, 'data')], { PIER_LOG_LEVEL: 'info' }, [], { ulimit: { nofile: 256 } });
    assert.match(edge.stderr(), /open files limit is already the hard limit/);
    assert.equal((await edge.status()).descriptors[0]?.limit, 256);

    // 1000 clients at once; those served stay open, holding two descriptors each at the edge.
    const held: net.Socket[] = [];
    t.after(() => {
      for (const socket of held) socket.destroy();
    });
    const startedAt = Date.now();
    const outcomes = await Promise.all(Array.from({ length: 1000 }, () => stormClient(stormPort, held)));
    const stormSeconds = (Date.now() - startedAt) / 1000;
    const served = outcomes.filter((o) => o === 'served').length;
    const closed = outcomes.length - served;
    assert.ok(served > 0 && closed > 0, `served ${served}, closed ${closed}`);
    t.diagnostic(`storm: ${served} served and held, ${closed} closed at once, in ${stormSeconds} s`);

    // With the storm's connections still held, the other endpoint is served.
    for (let i = 0; i < 20; i++) assert.equal((await exchange('127.0.0.1', otherPort, `other ${i}`)).toString(), `other ${i}`);

    const metrics = await edge.metrics();
    const refused = sample(metrics, 'pier_edge_descriptors_refused_total') ?? 0;
    assert.equal(refused, closed, 'every client closed by the edge is counted');
    assert.equal(sample(metrics, 'pier_edge_descriptor_errors_total', '{op="connect",code="EMFILE"}'), undefined, 'no backend connect ran out of descriptors');
    assert.equal(sample(metrics, 'pier_edge_endpoint_connections_active', '{endpoint="storm",app="test",name="storm"}'), served);
    const lines = edge.stderr().split('\n').filter((l) => l.includes('file descriptors running out'));
    assert.ok(lines.length >= 1, 'a log line says so');
    assert.ok(lines.length <= Math.ceil(stormSeconds) + 2, `at most one line a second: ${lines.length} lines in ${stormSeconds} s`);
    assert.match(lines[0] ?? '', /"limit":256/);

    for (const socket of held) socket.destroy();
    assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
  });
});
