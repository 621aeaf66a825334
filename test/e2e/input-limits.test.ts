// Bad input against a real `pier server` (PGlite, or PostgreSQL with DATABASE_URL): a body over
// the limit is refused from its headers or as soon as it passes the limit, without being read
// whole; NUL and control characters are a 422 naming the field; an image reference outside
// Docker's grammar is a 422 naming `image`; a manifest with thousands of problems gets a small
// answer; and none of these leaves anything behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import type { ErrorBody } from '../../api/views.js';
import { startPierServer, type PierServer } from '../support/pier-process.js';

const MB = 1024 * 1024;

async function api(server: PierServer, path: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(`${server.apiUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json' },
    body: init.body === undefined ? null : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null, text };
}

function errorOf(r: { body: unknown }): ErrorBody['error'] {
  return (r.body as ErrorBody).error;
}

/** Nothing of an app called `name` exists: no app, so no release, deployment or endpoint either. */
async function assertNoApp(server: PierServer, name: string): Promise<void> {
  const apps = (await api(server, '/v1/apps')).body as { apps: { name: string }[] };
  assert.deepEqual(apps.apps.map((a) => a.name).filter((n) => n === name), [], `app ${name} was left behind`);
  assert.equal((await api(server, `/v1/apps/${name}`)).status, 404);
}

/** VmHWM (peak resident set) of a process, in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  assert.ok(kb > 0, 'VmHWM readable');
  return kb * 1024;
}

/** Sends the head of a POST that declares `length` bytes, then `sent` bytes of it, and reads the answer. */
function declaredBody(server: PierServer, length: number, sent: number): Promise<{ head: string; body: string; closed: boolean }> {
  const url = new URL(server.apiUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer in 20 s; got ${JSON.stringify(received.slice(0, 500))}`));
    }, 20_000);
    socket.on('connect', () => {
      socket.write(`POST /v1/deploys HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${server.token}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`);
      socket.write(Buffer.alloc(sent, 0x20));
    });
    socket.on('data', (b) => (received += b.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const [head = '', body = ''] = received.split('\r\n\r\n');
      resolve({ head, body, closed: true });
    });
  });
}

/**
 * Streams up to `total` bytes as a chunked body. Resolves with the status and how much was
 * written before the answer arrived, and (when `untilClosed`) keeps writing until the server
 * stops reading or `total` is reached.
 */
function chunkedBody(server: PierServer, total: number, untilClosed: boolean): Promise<{ status: number; writtenAtAnswer: number; code: string | undefined }> {
  const url = new URL(server.apiUrl);
  return new Promise((resolve, reject) => {
    let written = 0;
    let answer: { status: number; writtenAtAnswer: number; code: string | undefined } | null = null;
    let stopped = false;
    const req = request({
      host: url.hostname,
      port: Number(url.port),
      method: 'POST',
      path: '/v1/deploys',
      headers: { authorization: `Bearer ${server.token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer in 60 s after ${written} bytes`));
    }, 60_000);
    const finish = () => {
      clearTimeout(timer);
      if (answer) resolve(answer);
      else reject(new Error(`the connection ended without an answer after ${written} bytes`));
    };
    req.on('response', (res) => {
      const writtenAtAnswer = written;
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => {
        answer = { status: res.statusCode ?? 0, writtenAtAnswer, code: (JSON.parse(text) as ErrorBody).error?.code };
        if (!untilClosed) {
          stopped = true;
          req.destroy();
          finish();
        }
      });
    });
    req.on('error', () => {
      stopped = true;
      finish();
    });
    req.on('close', () => {
      stopped = true;
      finish();
    });
    const chunk = Buffer.alloc(MB, 0x20);
    const pump = (): void => {
      while (!stopped && written < total) {
        written += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!stopped && written >= total) req.end();
    };
    pump();
  });
}

test('bad input is refused before it is read whole, parsed or written, with a coded error naming the field', async (t) => {
  const server = await startPierServer(t);

  await t.test('a 110 MB body with a Content-Length is refused from its headers (413) and the connection closed', async () => {
    const r = await declaredBody(server, 110 * MB, 64 * 1024);
    assert.match(r.head, /^HTTP\/1\.1 413 /);
    assert.match(r.head, /\r\nconnection: close/i);
    const body = JSON.parse(r.body) as ErrorBody;
    assert.equal(body.error.code, 'E_BODY_TOO_LARGE');
    assert.match(body.error.message, /4 MiB/);
    assert.match(body.error.hint ?? '', /PIER_BODY_LIMIT/);
  });

  await t.test('a chunked 110 MB body is refused once it passes the limit, long before its end', async () => {
    const r = await chunkedBody(server, 110 * MB, false);
    assert.equal(r.status, 413);
    assert.equal(r.code, 'E_BODY_TOO_LARGE');
    assert.ok(r.writtenAtAnswer < 100 * MB, `answered after ${r.writtenAtAnswer} bytes`);
  });

  await t.test('four 110 MB bodies at once do not grow the server by their size', async () => {
    const before = await peakRss(server.apiPid());
    const results = await Promise.all([0, 1, 2, 3].map(() => chunkedBody(server, 110 * MB, true)));
    for (const r of results) assert.equal(r.status, 413);
    const after = await peakRss(server.apiPid());
    // Buffering the bodies would take at least 4 × 110 MB; the limit keeps at most 4 × 4 MiB.
    assert.ok(after - before < 150 * MB, `peak RSS grew by ${Math.round((after - before) / MB)} MB`);
    assert.equal((await fetch(`${server.apiUrl}/healthz`)).status, 200, 'still serving');
  });

  await t.test('an env value with a NUL is a 422 naming the variable, and no app is created', async () => {
    const manifest = 'app = "nul"\nimage = "local/echo:1"\n[processes.web]\nenv = { GREETING = "a\\u0000b" }\n';
    const r = await api(server, '/v1/deploys', { body: { manifest } });
    assert.equal(r.status, 422, r.text);
    assert.equal(errorOf(r).code, 'E_MANIFEST_INVALID');
    const details = errorOf(r).details as { path: string; message: string; line: number }[];
    assert.equal(details[0]?.path, 'processes.web.env.GREETING');
    assert.match(details[0]?.message ?? '', /NUL character \(U\+0000\)/);
    assert.equal(details[0]?.line, 4);
    await assertNoApp(server, 'nul');
  });

  await t.test('control characters in a JSON manifest, a description or a URL are a 422 naming where they are', async () => {
    const manifest = { app: 'ctl', image: 'local/echo:1', env: { A: 'x\u0001y' }, processes: { web: { cmd: ['sh', '-c', 'echo \u0000'] } } };
    const r = await api(server, '/v1/deploys', { body: { manifest } });
    assert.equal(r.status, 422, r.text);
    assert.equal(errorOf(r).code, 'E_INVALID_CHARACTER');
    const paths = (errorOf(r).details as { path: string }[]).map((d) => d.path).sort();
    assert.deepEqual(paths, ['manifest.env.A', 'manifest.processes.web.cmd[2]']);
    await assertNoApp(server, 'ctl');

    const text = 'app = "ctl"\nimage = "local/echo:1"\n[processes.web]\n';
    const described = await api(server, '/v1/deploys', { body: { manifest: text, description: 'bad\u001b[31m' } });
    assert.equal(described.status, 422, described.text);
    assert.match(errorOf(described).message, /field description holds a control character \(U\+001B\)/);
    await assertNoApp(server, 'ctl');

    const inUrl = await api(server, '/v1/apps/a%00b/events');
    assert.equal(inUrl.status, 422, inUrl.text);
    assert.equal(errorOf(inUrl).code, 'E_INVALID_CHARACTER');
    assert.match(errorOf(inUrl).message, /URL path holds a NUL character/);
  });

  await t.test('an image reference outside Docker’s grammar is a 422 naming image, and never reaches Docker', async () => {
    for (const image of ['x;rm -rf /', 'UPPER/case:1', 'a b', 'local/echo:1\nX', '../etc/passwd']) {
      const manifest = `app = "img"\nimage = ${JSON.stringify(image)}\n[processes.web]\n`;
      const r = await api(server, '/v1/deploys', { body: { manifest } });
      assert.equal(r.status, 422, `${image}: ${r.text}`);
      assert.equal(errorOf(r).code, 'E_MANIFEST_INVALID', image);
      assert.deepEqual((errorOf(r).details as { path: string }[]).map((d) => d.path), ['image'], image);
    }
    await assertNoApp(server, 'img');
    assert.doesNotMatch(server.stderr(), /x;rm -rf/, 'the reference was not sent to the engine');
  });

  await t.test('a 2 MB manifest full of mistakes gets an answer of a few kilobytes that says how many there were', async () => {
    const lines = ['app = "big"', 'image = "local/echo:1"', '[processes.web]'];
    let n = 0;
    let size = lines.join('\n').length;
    while (size < 2 * MB) {
      const line = `unknown_key_number_${n++} = "${'v'.repeat(40)}"`;
      lines.push(line);
      size += line.length + 1;
    }
    const r = await api(server, '/v1/deploys', { body: { manifest: lines.join('\n') } });
    assert.equal(r.status, 422);
    assert.equal(errorOf(r).code, 'E_MANIFEST_INVALID');
    assert.ok(r.text.length < 64 * 1024, `the error body is ${r.text.length} bytes`);
    assert.equal((errorOf(r).details as unknown[]).length, 50);
    assert.match(errorOf(r).message, new RegExp(`${n} problems, the first 50 listed`));
    assert.match(errorOf(r).message, new RegExp(`… and ${n - 50} more`));
    await assertNoApp(server, 'big');
  });
});
