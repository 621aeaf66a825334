// `pier edge --api` reports what it serves to the API it follows (EDGE-REPORT.md), here a real HTTP
// server that records every report: after the apply (a port held by socat shows as failed with its
// error, name and revision echoed), when a state changes (a backend that resets is ejected; the
// port comes free), and on the API's heartbeat. The edge keeps one id across restarts, and its
// /status says when the API is unreachable. It reports the tokens of the ACME challenges it answers.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { startEchoBackend } from '../support/echo-backend.js';
import { PIER_BIN } from '../support/pier-process.js';
import { squatPort } from '../support/squatter.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { endpoint, forEachIo } from '../support/test-edge.js';
import { makeTestCa } from '../support/tls-certs.js';
import { startEdgeProcess } from './edge-process.js';
import { startFakeEdgeApi } from './fake-edge-api.js';

const lo = (port: number) => [{ address: '127.0.0.1', port }];
const packageJson = JSON.parse(await readFile(join(PIER_BIN, '../../../package.json'), 'utf8')) as { version: string };

/** Accepts and resets at once. */
async function startResettingBackend(t: TestContext): Promise<{ address: string; port: number }> {
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { address: '127.0.0.1', port: (server.address() as net.AddressInfo).port };
}

forEachIo((_io, mode) => {
  test('the edge reports after applying, on state changes and on the heartbeat, keeps its id, and shows an unreachable API in /status', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-report-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const echo = await startEchoBackend(t);
    const bad = await startResettingBackend(t);
    const [pa, pe, held] = [await freePort(), await freePort(), await freePort()];
    const squatter = await squatPort(t, held);
    const snapshot = {
      version: 100,
      endpoints: [
        endpoint({ id: 'ep_a', bind: lo(pa), backends: [{ ...echo, id: 'inst_a' }], options: { name: 'a/9000', revision: 3 } }),
        endpoint({ id: 'ep_s', bind: lo(held), backends: [{ ...echo, id: 'inst_s' }], options: { name: 'squat/21030', revision: 1 } }),
        endpoint({ id: 'ep_e', bind: lo(pe), backends: [{ ...bad, id: 'inst_bad' }, { ...echo, id: 'inst_good' }], options: { name: 'mixed/7000', revision: 2 } }),
      ],
    };
    const api = await startFakeEdgeApi(t, { snapshot, heartbeatMs: 1000 });
    const dataDir = join(dir, 'edge-data');
    const edge = await startEdgeProcess(t, ['--io', mode, '--api', api.url, '--workers', '2', '--data-dir', dataDir, '--name', 'edge-under-test'], { PIER_TOKEN: api.token });

    // After the apply: identity, the applied version, and per-endpoint state.
    const first = await api.waitForReport('with version 100 applied', (r) => r.applied === 100);
    assert.equal(api.reports[0]?.authorization, `Bearer ${api.token}`);
    assert.match(first.edge.id, /^edge_[0-9a-f]+$/);
    assert.deepEqual({ ...first.edge, id: '' }, { id: '', name: 'edge-under-test', version: packageJson.version, pid: edge.child.pid, workers: 2, io: mode });
    assert.equal((await readFile(join(dataDir, 'edge-id'), 'utf8')).trim(), first.edge.id);
    assert.ok(Date.parse(first.at) > 0);
    assert.equal(first.lastError, null);
    assert.deepEqual(first.acmeTokens, []);
    const byId = new Map(first.endpoints.map((e) => [e.id, e]));
    assert.deepEqual(
      { ...byId.get('ep_a'), total: 0 },
      { id: 'ep_a', name: 'a/9000', revision: 3, state: 'serving', listeners: [{ address: '127.0.0.1', port: pa, state: 'bound' }], active: 0, total: 0, bytesIn: 0, bytesOut: 0, connectErrors: 0 },
    );
    const squatted = byId.get('ep_s');
    assert.equal(squatted?.state, 'failed');
    assert.equal(squatted?.revision, 1);
    assert.equal(squatted?.listeners[0]?.error?.code, 'EADDRINUSE');
    assert.match(squatted?.listeners[0]?.error?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${held}`));
    assert.deepEqual(first.backends.map((b) => b.id).sort(), ['inst_a', 'inst_bad', 'inst_good', 'inst_s']);

    // A backend that accepts and resets: clients still get their echo, and its ejection is reported.
    const beforeEjection = api.reports.length;
    for (let i = 0; i < 200; i++) {
      assert.equal((await exchange('127.0.0.1', pe, `e ${i}`)).toString(), `e ${i}`);
      if (api.reports.slice(beforeEjection).some((r) => r.body.backends.some((b) => b.id === 'inst_bad' && b.ejected))) break;
      await delay(10);
    }
    const ejected = await api.waitForReport('with inst_bad ejected', (r) => r.backends.some((b) => b.id === 'inst_bad' && b.ejected), beforeEjection);
    const badBackend = ejected.backends.find((b) => b.id === 'inst_bad');
    assert.equal(badBackend?.lastError, 'ECONNRESET');
    assert.ok((badBackend?.connectFailures ?? 0) >= 3);

    // The port comes free: reported as serving, with no new snapshot.
    const beforeFree = api.reports.length;
    await squatter.release();
    const freed = await api.waitForReport('with ep_s serving', (r) => r.endpoints.some((e) => e.id === 'ep_s' && e.state === 'serving'), beforeFree);
    assert.equal(freed.applied, 100);

    // Heartbeat (the API asked for one a second): reports keep coming with nothing changing.
    const beforeBeat = api.reports.length;
    await api.waitForReport('on the heartbeat', () => true, beforeBeat + 1);
    const status = await edge.status();
    assert.deepEqual(status.edge, { id: first.edge.id, name: 'edge-under-test' });
    assert.equal(status.report?.lastOk, true);
    assert.equal(status.report?.heartbeatMs, 1000);
    assert.equal(status.lastError, null);
    assert.ok((status.report?.sent ?? 0) >= 4);

    // The API goes away: /status says so instead of null.
    await api.close();
    for (let i = 0; i < 100 && !/api unreachable: ECONNREFUSED/.test((await edge.status()).lastError ?? ''); i++) await delay(100);
    const down = await edge.status();
    assert.match(down.lastError ?? '', /^api unreachable: ECONNREFUSED/);
    assert.equal(down.version, 100, 'still serving the last snapshot');
    assert.equal((await exchange('127.0.0.1', pa, 'still served')).toString(), 'still served');
    assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));

    // The same data folder: the same edge for the next API, whose snapshot has ACME challenges:
    // the edge reports the tokens of those an endpoint answers (app "test" has a terminate
    // endpoint; app "other" has none here, so its challenge is not answered).
    const ca = makeTestCa(t);
    const challenge = (app: string, token: string) => ({ app, name: 'a.example.test', token, ...ca.issue({ cn: token, names: ['a.example.test'] }) });
    const withAcme = {
      ...snapshot,
      version: 101,
      endpoints: [...snapshot.endpoints, endpoint({ id: 'ep_t', bind: lo(await freePort()), backends: [{ ...echo, id: 'inst_t' }], options: { name: 'test/443', tls: 'terminate', terminate: { certificates: [] } } })],
      acmeChallenges: [challenge('test', 'tok-test'), challenge('other', 'tok-other')],
    };
    const api2 = await startFakeEdgeApi(t, { snapshot: withAcme, heartbeatMs: 1000 });
    const again = await startEdgeProcess(t, ['--io', mode, '--api', api2.url, '--workers', '1', '--data-dir', dataDir], { PIER_TOKEN: api2.token });
    const next = await api2.waitForReport('from the restarted edge', (r) => r.applied === 101);
    assert.equal(next.edge.id, first.edge.id);
    assert.equal(next.edge.workers, 1);
    assert.deepEqual(next.acmeTokens, ['tok-test']);
    assert.equal(await again.stop('SIGTERM'), 0);
  });
});
