// The incremental decoders of Docker's stream format: any split of the bytes into chunks gives the
// same frames and lines as the whole body at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameDecoder, LogLineDecoder, parseLogFrames } from '../../../api/runtime/docker-log-frames.js';
import type { LogLine } from '../../../api/runtime/runtime.js';

function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

const T1 = '2026-01-02T03:04:05.123456789Z';
const T2 = '2026-01-02T03:04:06.000000001Z';

function decodeInChunks(body: Buffer, size: number): LogLine[] {
  const decoder = new LogLineDecoder();
  const lines: LogLine[] = [];
  for (let i = 0; i < body.length; i += size) lines.push(...decoder.push(body.subarray(i, i + size)));
  return [...lines, ...decoder.end()];
}

test('a multiplexed body cut into chunks of any size decodes to the same lines', () => {
  const body = Buffer.concat([frame(1, `${T1} hello\n`), frame(2, `${T1} part one, `), frame(2, `${T2} part two\n`), frame(1, `${T2} héllo wörld\n`)]);
  const whole = parseLogFrames(body);
  assert.deepEqual(whole.map((l) => l.line), ['hello', 'part one, part two', 'héllo wörld']);
  for (let size = 1; size <= body.length; size++) assert.deepEqual(decodeInChunks(body, size), whole, `chunks of ${size} bytes`);
});

test('a TTY stream cut inside a UTF-8 character keeps the character whole', () => {
  const body = Buffer.from(`${T1} héllo\r\n${T2} last without newline`);
  for (let size = 1; size <= 12; size++) {
    assert.deepEqual(
      decodeInChunks(body, size).map((l) => [l.stream, l.line]),
      [['stdout', 'héllo'], ['stdout', 'last without newline']],
      `chunks of ${size} bytes`,
    );
  }
});

test('the frame decoder holds a partial frame until its last byte and keeps exec output byte-exact', () => {
  const decoder = new FrameDecoder();
  const body = Buffer.concat([frame(1, 'out\n'), frame(2, 'err')]);
  assert.deepEqual(decoder.push(body.subarray(0, 5)), []);
  const first = decoder.push(body.subarray(5, 14));
  assert.deepEqual(first.map((f) => [f.stream, f.payload.toString()]), [['stdout', 'out\n']]);
  const rest = decoder.push(body.subarray(14));
  assert.deepEqual(rest.map((f) => [f.stream, f.payload.toString()]), [['stderr', 'err']]);
  assert.deepEqual(decoder.end(), []);
});
