// `pier agent` as a process: every request needs its token (nothing is done without it), ids are
// never paths, a receive cut off mid-stream (even at a tar member's end, which tar alone would
// take for a whole archive) leaves no snapshot, a failed send never ends like a whole one, an
// import cut off or refused mid-upload leaves nothing and an export cut off errors, an agent
// that does not answer is E_AGENT_UNREACHABLE naming its URL, and the command refuses a wildcard
// or public listen address and a token on the command line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { connectRemoteVolumeDriver } from '../../../api/volumes/drivers/remote-driver.js';
import { tempRoot } from '../../support/btrfs-loop.js';
import { eventually } from '../../support/eventually.js';
import { startNodeAgent } from '../../support/node-agent.js';
import { runPier } from '../../support/pier-process.js';

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

async function raw(url: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const res = await fetch(new URL(path, url), { method, headers, body });
  return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
}

test('no token or a wrong one: 401 E_AGENT_UNAUTHENTICATED as JSON, and nothing is done; the remote driver says so naming the agent', async (t) => {
  const root = await tempRoot(t);
  const agent = await startNodeAgent(t, root);
  for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong-token-of-some-length' }, { authorization: `Bearer ${agent.token}x` }, { authorization: `Basic ${agent.token}` }]) {
    const r = await raw(agent.url, 'PUT', '/v1/volumes/vol_x', { ...headers, 'content-type': 'application/json' }, '{}');
    assert.equal(r.status, 401);
    assert.equal(r.json.error?.code, 'E_AGENT_UNAUTHENTICATED');
    const get = await raw(agent.url, 'GET', '/v1/root', headers);
    assert.equal(get.status, 401);
  }
  assert.equal(await exists(join(root, 'volumes', 'vol_x')), false, 'no volume was made');
  // Unknown routes too are behind the token: nothing about the agent shows without it.
  assert.equal((await raw(agent.url, 'GET', '/nowhere')).json.error?.code, 'E_AGENT_UNAUTHENTICATED');
  await assert.rejects(connectRemoteVolumeDriver({ url: agent.url, token: 'not-the-agents-token' }), (err: Error & { code?: string; status?: number }) => {
    assert.equal(err.code, 'E_AGENT_UNAUTHENTICATED');
    assert.equal(err.status, 502, 'the server\'s set-up, not the caller\'s token');
    assert.ok(err.message.includes(agent.url));
    return true;
  });
  // With the token: made, and the path is the node's.
  const ok = await raw(agent.url, 'PUT', '/v1/volumes/vol_x', { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' }, '{}');
  assert.equal(ok.status, 200);
  assert.ok(await exists(join(root, 'volumes', 'vol_x')));
  assert.doesNotMatch(agent.stderr(), /\n\s+at /, 'no stack trace in the log');
});

test('ids are never paths; bad JSON is E_AGENT_BAD_REQUEST; an unknown route is E_AGENT_ROUTE_NOT_FOUND', async (t) => {
  const root = await tempRoot(t);
  const agent = await startNodeAgent(t, root);
  const auth = { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' };
  for (const path of ['/v1/volumes/a..b', '/v1/volumes/a%2F..%2F..%2Fetc', '/v1/staging/x.y', '/v1/volumes/%2Fetc']) {
    const r = await raw(agent.url, 'PUT', path, auth, '{}');
    assert.equal(r.json.error?.code, 'E_AGENT_BAD_REQUEST', path);
    assert.equal(r.status, 400);
  }
  const snap = await raw(agent.url, 'PUT', '/v1/snapshots/snap_1', auth, '{"volumeId":"../x"}');
  assert.equal(snap.json.error?.code, 'E_AGENT_BAD_REQUEST');
  assert.equal((await raw(agent.url, 'PUT', '/v1/snapshots/snap_1', auth, 'not json')).json.error?.code, 'E_AGENT_BAD_REQUEST');
  assert.equal((await raw(agent.url, 'PUT', '/v1/volumes/vol_y', auth, '{"sizeLimitBytes":-3}')).json.error?.code, 'E_AGENT_BAD_REQUEST');
  const missing = await raw(agent.url, 'POST', '/v1/nothing', auth);
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error?.code, 'E_AGENT_ROUTE_NOT_FOUND');
  // A driver failure keeps its code and the tool's words.
  const restore = await raw(agent.url, 'POST', '/v1/snapshots/snap_none/restore', auth, '{"volumeId":"vol_z"}');
  assert.equal(restore.status, 500);
  assert.equal(restore.json.error?.code, 'E_VOLUME_DRIVER');
  assert.doesNotMatch(JSON.stringify(restore.json), /\n\s+at /);
});

test('a receive cut off at a tar member boundary leaves no snapshot (the agent kills its tool); a failed send errors, it does not end like a whole stream', async (t) => {
  const root = await tempRoot(t);
  const agent = await startNodeAgent(t, root);
  const driver = await connectRemoteVolumeDriver({ url: agent.url, token: agent.token });
  // A tar of two files, cut right after the first file's data: tar -x alone takes that as whole.
  const src = join(await tempRoot(t), 'src');
  await mkdir(src);
  await writeFile(join(src, 'a'), Buffer.alloc(3000, 1));
  await writeFile(join(src, 'b'), Buffer.alloc(5000, 2));
  const tarBytes = await new Promise<Buffer>((resolve, reject) => {
    const tar = spawn('tar', ['-C', src, '--sort=name', '-cf', '-', 'a', 'b']);
    const chunks: Buffer[] = [];
    tar.stdout.on('data', (c: Buffer) => chunks.push(c));
    tar.once('error', reject);
    tar.once('close', () => resolve(Buffer.concat(chunks)));
  });
  const memberEnd = 512 + 3072; // header of a, its data padded to 512
  await new Promise<void>((resolve) => {
    const req = request(new URL('/v1/snapshots/snap_cut/stream', agent.url), { method: 'PUT', headers: { authorization: `Bearer ${agent.token}` } });
    req.on('error', () => resolve());
    req.write(tarBytes.subarray(0, memberEnd), () => {
      // The rest never comes: the connection is cut.
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
  });
  // The agent notices the cut and kills tar (its receive fails, logged); what tar had extracted never becomes the snapshot.
  await eventually(() => /"path":"\/v1\/snapshots\/snap_cut\/stream"[^\n]*"msg":"request failed"/.test(agent.stderr()), 'the agent to fail the cut-off receive', 300, 50);
  assert.equal(await exists(join(root, 'snapshots', 'snap_cut')), false, 'no snapshot from a cut-off stream');
  assert.equal(await driver.receivedFingerprint('snap_cut'), null);

  // A send of a snapshot that does not exist: the stream errors with the agent's coded error.
  const send = driver.send('snap_none', null);
  const chunks: Buffer[] = [];
  const read = (async () => {
    for await (const c of send.stream) chunks.push(c as Buffer);
  })();
  await assert.rejects(send.done, (err: Error & { code?: string }) => err.code === 'E_VOLUME_DRIVER' && err.message.includes(agent.url));
  await assert.rejects(read, { code: 'E_VOLUME_DRIVER' });
});

test('the data routes need the token; an export header that is not one is E_AGENT_BAD_REQUEST; an import cut off or refused mid-upload leaves nothing; an export whose reader leaves stops on the agent, and one cut off errors', async (t) => {
  const root = await tempRoot(t);
  const agent = await startNodeAgent(t, root);
  const driver = await connectRemoteVolumeDriver({ url: agent.url, token: agent.token });
  const path = await driver.create('vol_1');
  await writeFile(join(path, 'big.bin'), randomBytes(24 * 1024 * 1024));
  await driver.snapshot('vol_1', 'snap_1');
  const tree = await driver.treeHash({ snapshot: 'snap_1' });
  const header = { id: 'snap_1', volume: 'data', sha256: tree.sha256, bytes: tree.bytes, files: tree.files, createdAt: new Date().toISOString() };

  const noToken = { 'content-type': 'application/json' };
  for (const [method, route, body] of [
    ['GET', '/v1/volumes/vol_1/usage'],
    ['GET', '/v1/snapshots/snap_1/tree-hash'],
    ['POST', '/v1/snapshots/snap_1/export', JSON.stringify({ header })],
    ['PUT', '/v1/snapshots/snap_2/import', 'PIER-SNAPSHOT/2 {}\n'],
  ] as const) {
    const r = await raw(agent.url, method, route, noToken, body);
    assert.equal(r.status, 401, route);
    assert.equal(r.json.error?.code, 'E_AGENT_UNAUTHENTICATED', route);
  }
  assert.equal(await exists(join(root, 'snapshots', 'snap_2')), false, 'nothing was imported without the token');

  const auth = { authorization: `Bearer ${agent.token}`, 'content-type': 'application/json' };
  for (const bad of [{}, { header: { ...header, sha256: '../x' } }, { header: { ...header, bytes: -1 } }, { header: 'x' }]) {
    const r = await raw(agent.url, 'POST', '/v1/snapshots/snap_1/export', auth, JSON.stringify(bad));
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.equal(r.json.error?.code, 'E_AGENT_BAD_REQUEST');
  }
  assert.equal((await raw(agent.url, 'GET', '/v1/snapshots/..%2Fx/tree-hash', auth)).json.error?.code, 'E_AGENT_BAD_REQUEST');

  // The whole file, exported through the agent.
  const exported = driver.exportSnapshot('snap_1', header);
  const chunks: Buffer[] = [];
  for await (const c of exported.stream) chunks.push(c as Buffer);
  await exported.done;
  const file = Buffer.concat(chunks);

  // An upload cut off halfway: the agent fails the import (E_AGENT_STREAM in its log) and keeps nothing.
  await new Promise<void>((resolve) => {
    const req = request(new URL('/v1/snapshots/snap_cut/import', agent.url), { method: 'PUT', headers: { authorization: `Bearer ${agent.token}` } });
    req.on('error', () => resolve());
    req.write(file.subarray(0, file.length >> 1), () =>
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200),
    );
  });
  await eventually(() => /"snapshot":"snap_cut"[^\n]*"msg":"import cut off"/.test(agent.stderr()), 'the agent to fail the cut-off import', 300, 50);
  assert.equal(await exists(join(root, 'snapshots', 'snap_cut')), false, 'no snapshot from a cut-off import');
  assert.deepEqual(await readdir(join(root, 'staging')), [], 'nothing staged is left');

  // Refused at its header while the upload goes on (32 MiB): the answer comes, and nothing is kept.
  let sent = 0;
  const junk = new Readable({
    read() {
      sent += 65_536;
      this.push(sent > 32 * 1024 * 1024 ? null : sent === 65_536 ? Buffer.concat([Buffer.from('hello\n'), Buffer.alloc(65_530)]) : Buffer.alloc(65_536));
    },
  });
  await assert.rejects(driver.importSnapshot('snap_junk', junk), (err: Error & { code?: string; status?: number }) => {
    assert.equal(err.code, 'E_SNAPSHOT_CORRUPT', err.message);
    assert.equal(err.status, 422);
    assert.ok(err.message.includes(agent.url), err.message);
    return true;
  });
  assert.equal(await exists(join(root, 'snapshots', 'snap_junk')), false);

  // A reader that goes away midway: the agent stops making the file (its tar is killed, and it says so).
  const left = driver.exportSnapshot('snap_1', header);
  left.done.catch(() => undefined);
  assert.equal((await left.stream[Symbol.asyncIterator]().next()).done, false, 'that export began');
  left.stream.destroy();
  await eventually(() => /"snapshot":"snap_1"[^\n]*"msg":"export failed"/.test(agent.stderr()), 'the agent to stop the export its reader left', 300, 50);

  // An export whose agent stops midway: the stream errors (E_AGENT_STREAM); it never ends like a whole file.
  const cut = driver.exportSnapshot('snap_1', header);
  cut.done.catch(() => undefined);
  const reader = cut.stream[Symbol.asyncIterator]();
  assert.equal((await reader.next()).done, false, 'the export began');
  await agent.stop();
  await assert.rejects(
    (async () => {
      for (;;) if ((await reader.next()).done) return;
    })(),
    { code: 'E_AGENT_STREAM' },
  );
  await assert.rejects(cut.done, { code: 'E_AGENT_STREAM' });
});

test('an agent that does not answer is E_AGENT_UNREACHABLE naming its URL', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  await assert.rejects(connectRemoteVolumeDriver({ url, token: 'x'.repeat(32) }), (err: Error & { code?: string; status?: number }) => {
    assert.equal(err.code, 'E_AGENT_UNREACHABLE');
    assert.equal(err.status, 503);
    assert.ok(err.message.includes(url), err.message);
    assert.match(err.message, /ECONNREFUSED/);
    return true;
  });
});

test('pier agent refuses a wildcard or public address, a token on the command line, a missing or short token, and a Docker host that is not a unix socket', async (t) => {
  const root = await tempRoot(t);
  const tokenFile = join(root, 'token');
  await writeFile(tokenFile, 'a'.repeat(40));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.PIER_AGENT_TOKEN;
  const cases: [string[], string, RegExp][] = [
    [['--listen', '0.0.0.0:7710', '--token-file', tokenFile], 'E_CONFIG_INVALID', /wildcard/],
    [['--listen', '[::]:7710', '--token-file', tokenFile], 'E_CONFIG_INVALID', /wildcard/],
    [['--listen', '8.8.8.8:7710', '--token-file', tokenFile], 'E_CONFIG_INVALID', /public address/],
    [['--listen', '127.0.0.1:0', '--token', 'a'.repeat(40)], 'E_USAGE', /ps/],
    [['--listen', '127.0.0.1:0'], 'E_USAGE', /needs a token/],
    [['--listen', '127.0.0.1:0', '--token-file', join(root, 'none')], 'E_CONFIG_INVALID', /no such file/],
    [['--listen', '127.0.0.1:0', '--token-file', tokenFile, '--docker-host', 'tcp://127.0.0.1:2375'], 'E_USAGE', /--docker-host must be unix:\/\/\/PATH/],
  ];
  for (const [args, code, expected] of cases) {
    const r = await runPier(['agent', '--volume-root', join(root, 'vols'), ...args], env, { timeoutMs: 30_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`\\(${code}\\)`), args.join(' '));
    assert.match(r.stderr, expected, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  await writeFile(tokenFile, 'short');
  const short = await runPier(['agent', '--volume-root', join(root, 'vols'), '--listen', '127.0.0.1:0', '--token-file', tokenFile], env, { timeoutMs: 30_000 });
  assert.equal(short.code, 2);
  assert.match(short.stderr, /below the 16 a token needs \(E_CONFIG_INVALID\)/);
});
