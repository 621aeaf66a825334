// followApiFeed against a local SSE server (the real API is covered by edge-api-feed.test.ts):
// snapshots in order, reconnection after the stream drops, a silent stream, and a refused token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { followApiFeed, watchUrl } from '../../proxy/api-feed.js';
import { eventually } from '../support/eventually.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, attempt: number) => void;

async function feedServer(t: import('node:test').TestContext, handler: Handler): Promise<{ url: string; attempts: () => number; auth: string[] }> {
  let attempts = 0;
  const auth: string[] = [];
  const server = http.createServer((req, res) => {
    attempts++;
    auth.push(req.headers.authorization ?? '');
    handler(req, res, attempts);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, attempts: () => attempts, auth };
}

function sse(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
}

function follow(t: import('node:test').TestContext, url: string, received: unknown[], idleTimeoutMs?: number): void {
  const abort = new AbortController();
  const done = followApiFeed({
    url,
    token: 'pier_secret',
    log: pino({ level: 'silent' }),
    signal: abort.signal,
    minBackoffMs: 10,
    maxBackoffMs: 50,
    ...(idleTimeoutMs === undefined ? {} : { idleTimeoutMs }),
    onSnapshot: async (s) => void received.push(s),
  });
  t.after(async () => {
    abort.abort();
    await done;
  });
}

test('the watch URL is built from the API base, with or without /v1 and a trailing slash', () => {
  assert.equal(watchUrl('http://127.0.0.1:7700'), 'http://127.0.0.1:7700/v1/edge/watch');
  assert.equal(watchUrl('http://127.0.0.1:7700/v1/'), 'http://127.0.0.1:7700/v1/edge/watch');
});

test('snapshots arrive in order, pings are skipped, and a dropped stream is reconnected', async (t) => {
  const feed = await feedServer(t, (_req, res, attempt) => {
    sse(res);
    if (attempt === 1) {
      res.write('event: config\nid: 1\ndata: {"version":1,\ndata: "endpoints":[]}\n\n');
      res.write('event: ping\ndata: \n\n: a comment\n\n');
      res.end('event: config\nid: 2\ndata: {"version":2,"endpoints":[]}\n\n');
    } else {
      res.write('event: config\nid: 3\ndata: {"version":3,"endpoints":[]}\n\n');
    }
  });
  const received: unknown[] = [];
  follow(t, feed.url, received);
  await eventually(() => received.length === 3, 'three snapshots over two connections', 300);
  assert.deepEqual(received.map((s) => (s as { version: number }).version), [1, 2, 3]);
  assert.equal(feed.auth[0], 'Bearer pier_secret');
});

test('a stream that goes silent is dropped and reopened', async (t) => {
  const feed = await feedServer(t, (_req, res, attempt) => {
    sse(res);
    res.write(`event: config\ndata: {"version":${attempt},"endpoints":[]}\n\n`);
    // Then nothing: no ping, no end.
  });
  const received: unknown[] = [];
  follow(t, feed.url, received, 100);
  await eventually(() => feed.attempts() >= 2 && received.length >= 2, 'a second connection after the silence', 300);
});

test('a refused token is retried with backoff rather than given up', async (t) => {
  const feed = await feedServer(t, (_req, res) => {
    res.writeHead(401, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"E_UNAUTHORIZED"}}');
  });
  const received: unknown[] = [];
  follow(t, feed.url, received);
  await eventually(() => feed.attempts() >= 3, 'three attempts', 300);
  assert.equal(received.length, 0);
});

test('while backing off after failures, a retry event reconnects at once; problems and recovery are told to onStatus', async (t) => {
  let up = false;
  const feed = await feedServer(t, (_req, res) => {
    if (!up) {
      res.writeHead(503).end('starting');
      return;
    }
    sse(res);
    res.write('event: config\ndata: {"version":9,"endpoints":[]}\n\n');
  });
  const received: unknown[] = [];
  const statuses: (string | null)[] = [];
  const retryNow = new EventTarget();
  const abort = new AbortController();
  const done = followApiFeed({
    url: feed.url,
    token: 'pier_secret',
    log: pino({ level: 'silent' }),
    signal: abort.signal,
    // Backoffs long enough that only the retry event can bring the snapshot within the wait below.
    minBackoffMs: 60_000,
    maxBackoffMs: 60_000,
    retryNow,
    onStatus: (problem) => statuses.push(problem),
    onSnapshot: async (s) => void received.push(s),
  });
  t.after(async () => {
    abort.abort();
    await done;
  });
  await eventually(() => feed.attempts() === 1 && statuses.length === 1, 'the first attempt to fail');
  assert.match(statuses[0] ?? '', /the API answered 503 at .*\/v1\/edge\/watch: starting/);
  up = true;
  retryNow.dispatchEvent(new Event('retry'));
  await eventually(() => received.length === 1, 'the snapshot after the retry event', 300);
  assert.equal(statuses.at(-1), null, 'connected again');
});
