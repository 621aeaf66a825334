// `pier edge` under Node switches that forbid its internal-bindings fast path: with the permission
// model it must start and serve on socket i/o (the handle module never loaded, no
// ERR_ACCESS_DENIED), with --pending-deprecation likewise without warning DEP0111, and an explicit
// `--io handle` it cannot honour is a usage error that says why.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { startEchoBackend } from '../support/echo-backend.js';
import { eventually } from '../support/eventually.js';
import { PIER_BIN } from '../support/pier-process.js';
import { exchange, freePort } from '../support/tcp-client.js';
import { startEdgeProcess } from './edge-process.js';

const flags = process.allowedNodeEnvironmentFlags;
/** The permission model's switch on this Node (`--experimental-permission` on 20), or null. */
const PERMISSION = flags.has('--permission') ? '--permission' : flags.has('--experimental-permission') ? '--experimental-permission' : null;
/** Node 25+ also gates the network behind the permission model. */
const PERMISSION_FLAGS = PERMISSION === null ? [] : [PERMISSION, '--allow-fs-read=*', ...(flags.has('--allow-net') ? ['--allow-net'] : [])];

async function snapshotFile(t: TestContext, backendPort: number): Promise<{ file: string; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-edge-flags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const file = join(dir, 'edge.json');
  const endpoint = { id: 'echo/1', app: 'echo', bind: [{ address: '127.0.0.1', port }], proxyProtocol: 'none', backends: [{ id: 'b', address: '127.0.0.1', port: backendPort }] };
  await writeFile(file, JSON.stringify({ version: 1, endpoints: [endpoint] }));
  return { file, port };
}

test('under node --permission, pier edge picks socket i/o by itself, runs one worker and serves', { skip: PERMISSION === null ? 'this Node has no --permission' : false }, async (t) => {
  const echo = await startEchoBackend(t);
  const { file, port } = await snapshotFile(t, echo.port);
  // No --workers, no --allow-child-process, no writable data folder: all of that must be coped with.
  const edge = await startEdgeProcess(t, ['--config', file], {}, PERMISSION_FLAGS);
  const summary = /1 worker \(node --permission forbids forking\), socket i\/o, serving version 1/;
  await eventually(() => summary.test(edge.stdout()), `stdout to say ${summary}: ${edge.stdout()}`);
  assert.equal((await exchange('127.0.0.1', port, 'through a locked-down edge\n')).toString(), 'through a locked-down edge\n');
  assert.equal((await edge.status()).io, 'socket');
  const stderr = edge.stderr();
  assert.match(stderr, /"io":"socket","choice":"auto","reason":"Node's permission model denies process.binding\(\)","msg":"edge i\/o selected"/);
  assert.doesNotMatch(stderr, /ERR_ACCESS_DENIED/);
  assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
});

test('under node --permission, --io handle is refused with the reason and a hint', { skip: PERMISSION === null ? 'this Node has no --permission' : false }, async (t) => {
  const { file } = await snapshotFile(t, await freePort());
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const args = [...PERMISSION_FLAGS, PIER_BIN, 'edge', '--io', 'handle', '--config', file, '--admin-listen', '127.0.0.1:0'];
    execFile(process.execPath, args, { timeout: 30_000 }, (err, _stdout, stderr) => resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stderr }));
  });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /handle i\/o cannot run here: Node's permission model denies process\.binding\(\)/);
  assert.match(result.stderr, /--io socket/);
});

test('with --pending-deprecation, pier edge picks socket i/o and warns nothing about process.binding', async (t) => {
  const echo = await startEchoBackend(t);
  const { file, port } = await snapshotFile(t, echo.port);
  const dir = await mkdtemp(join(tmpdir(), 'pier-edge-flags-data-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const edge = await startEdgeProcess(t, ['--config', file, '--workers', '2', '--data-dir', dir], {}, ['--pending-deprecation']);
  assert.equal((await exchange('127.0.0.1', port, 'no warning\n')).toString(), 'no warning\n');
  const status = await edge.status();
  assert.equal(status.io, 'socket');
  assert.equal(status.workers.length, 2, 'cluster workers inherit the choice');
  assert.equal(await edge.stop('SIGTERM'), 0, edge.stderr().slice(-2000));
  assert.doesNotMatch(edge.stderr(), /DeprecationWarning|\[DEP0111\]/);
});
