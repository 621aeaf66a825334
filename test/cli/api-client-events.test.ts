// `pier events -f` reads the API's server-sent events through eventsource-parser (the one SSE
// parser cli/ and proxy/ share): events split across chunks, CRLF line ends, multi-line data,
// comments and pings all come out as whole events, in order.

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ApiClient } from '../../cli/api-client.js';

test('followEvents yields each event whole, whatever the chunking, and skips pings and comments', async (t) => {
  const first = { id: 1, type: 'app.created', message: 'made' };
  const second = { id: 2, type: 'instance.started', message: 'two\nlines' };
  const wire =
    `: connected\r\n\r\nid: 1\r\nevent: event\r\ndata: ${JSON.stringify(first)}\r\n\r\n` +
    'event: ping\ndata:\n\n' +
    // One JSON document spread over two data lines is joined with a newline, as SSE says.
    `id: 2\nevent: event\ndata: {"id":2,"type":"instance.started",\ndata: "message":"two\\nlines"}\n\n`;
  const server = http.createServer((req, res) => {
    assert.equal(req.headers.accept, 'text/event-stream');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // Cut the stream into 7-byte pieces, each flushed on its own.
    const bytes = Buffer.from(wire);
    let at = 0;
    const next = (): void => {
      if (at >= bytes.length) return;
      res.write(bytes.subarray(at, at + 7));
      at += 7;
      setImmediate(next);
    };
    next();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const client = new ApiClient({ apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 't' });
  const abort = new AbortController();
  const seen: unknown[] = [];
  try {
    for await (const event of client.followEvents('web', undefined, abort.signal)) {
      seen.push(event);
      if (seen.length === 2) abort.abort();
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  }
  assert.deepEqual(seen, [first, second]);
});
