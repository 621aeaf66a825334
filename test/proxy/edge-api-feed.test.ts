// `pier edge --api` against a real `pier server --role api` (no edge in the API process): follows
// the feed to a deployed busybox echo app, keeps serving when the API stops, and restarts from its
// state file while the API is still down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { removeAppContainers } from '../support/containers.js';
import { eventually } from '../support/eventually.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier } from '../support/pier-process.js';
import { exchange, freePortOnBoth } from '../support/tcp-client.js';
import { forEachIo } from '../support/test-edge.js';
import { startApiServer, startEdgeProcess } from './edge-process.js';

const manifest = (image: string, port: number): string => `
app = "edgefeed"
image = "${image}"

[processes.echo]
cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]
count = 1

[[endpoints]]
process = "echo"
port = ${port}
target = 8080
proxy_protocol = "none"
`;

/** Echo through the edge, retrying while the feed or the container's nc catches up (bounded). */
async function echoThrough(host: string, port: number, payload: string): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 60; i++) {
    try {
      const reply = (await exchange(host, port, payload)).toString();
      if (reply === payload) return;
      last = new Error(`got ${JSON.stringify(reply)}`);
    } catch (err) {
      last = err;
    }
    await delay(250);
  }
  throw last;
}

forEachIo((_io, mode) => {
  test('an edge following the API serves a deployed app, survives the API stopping, and restarts from its state file', async (t) => {
    if (!(await requireDocker(t))) return;
    const image = await ensureBusyboxImage();
    const api = await startApiServer(t);
    const dir = await mkdtemp(join(tmpdir(), 'pier-edge-feed-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const dataDir = join(dir, 'edge-data');
    const port = await freePortOnBoth();

    const edge = await startEdgeProcess(t, ['--io', mode, '--api', api.apiUrl, '--workers', '2', '--data-dir', dataDir], { PIER_TOKEN: api.token });
    const file = join(api.dir, 'pier.toml');
    await writeFile(file, manifest(image, port));
    const deploy = await runPier(['deploy', '-c', file, '--json'], api.env);
    assert.equal(deploy.code, 0, `deploy failed:\n${deploy.stderr}\nserver log:\n${api.stderr().slice(-3000)}`);
    const status = await runPier(['status', '--app', 'edgefeed', '--json'], api.env);
    const appId = (JSON.parse(status.stdout) as { app: { id: string } }).app.id;
    t.after(() => removeAppContainers(appId));

    await echoThrough('127.0.0.1', port, 'via the feed\n');
    await echoThrough('::1', port, 'via the feed, IPv6\n');
    const served = await edge.status();
    assert.ok(served.version !== null && served.version > 0);
    assert.deepEqual(served.listeners.map((l) => `${l.address}:${l.port}`).sort(), [`127.0.0.1:${port}`, `::1:${port}`]);
    const stored = JSON.parse(await readFile(join(dataDir, 'edge-state.json'), 'utf8')) as { version: number };
    assert.equal(stored.version, served.version);

    // The API goes away abruptly (a crash, a lost node): the edge holds its watch stream open.
    await api.stop('SIGKILL');
    await echoThrough('127.0.0.1', port, 'API gone, still served\n');

    assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
    const again = await startEdgeProcess(t, ['--api', api.apiUrl, '--workers', '1', '--data-dir', dataDir], { PIER_TOKEN: api.token, PIER_EDGE_IO: mode });
    const restarted = await again.status();
    assert.equal(restarted.version, served.version);
    assert.equal(restarted.io, mode, 'PIER_EDGE_IO picks the i/o as --io does');
    await echoThrough('::1', port, 'from the state file\n');
    // Said once its first try at the API fails: its log line may come after the echo above.
    await eventually(() => /edge feed unreachable/.test(again.stderr()), `the restarted edge to say its feed is unreachable:\n${again.stderr().slice(-2000)}`, 500, 20);
  });
});
