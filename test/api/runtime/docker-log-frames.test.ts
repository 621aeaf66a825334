// parseLogFrames: Docker's multiplexed logs body (8-byte headers) into timestamped lines.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLogFrames } from '../../../api/runtime/docker-log-frames.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

const T1 = '2026-01-02T03:04:05.123456789Z';
const T2 = '2026-01-02T03:04:06.000000001Z';

test('frames become lines with their stream and time, oldest first', () => {
  const body = Buffer.concat([frame(1, `${T1} hello\n`), frame(2, `${T2} oops\n`)]);
  assert.deepEqual(parseLogFrames(body), [
    { stream: 'stdout', time: new Date('2026-01-02T03:04:05.123Z'), line: 'hello' },
    { stream: 'stderr', time: new Date('2026-01-02T03:04:06.000Z'), line: 'oops' },
  ]);
});

test('lines keep their spaces and an empty line stays a line', () => {
  const body = Buffer.concat([frame(1, `${T1}   indented  text\n`), frame(1, `${T1} \n`)]);
  assert.deepEqual(parseLogFrames(body).map((l) => l.line), ['  indented  text', '']);
});

test('a long message split over several frames is joined into one line', () => {
  const body = Buffer.concat([frame(1, `${T1} part one, `), frame(1, `${T2} part two\n`)]);
  const lines = parseLogFrames(body);
  assert.deepEqual(lines.map((l) => l.line), ['part one, part two']);
  assert.deepEqual(lines[0]?.time, new Date(T1));
});

test('a TTY body without frames is read as stdout lines', () => {
  const lines = parseLogFrames(Buffer.from(`${T1} one\r\n${T2} two\r\n`));
  assert.deepEqual(lines.map((l) => [l.stream, l.line]), [['stdout', 'one'], ['stdout', 'two']]);
});

test('an empty body has no lines', () => {
  assert.deepEqual(parseLogFrames(Buffer.alloc(0)), []);
});
