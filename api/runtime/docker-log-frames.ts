// Decodes the body of Docker's logs endpoint with `timestamps=true` into LogLines. Non-TTY
// containers multiplex stdout and stderr in frames: [stream, 0, 0, 0, size (u32 BE)] + payload.

import type { LogLine } from './runtime.js';

type Stream = LogLine['stream'];

const HEADER = 8;

/** Splits a complete logs body into lines, oldest first. A TTY body (no frames) is all stdout. */
export function parseLogFrames(body: Buffer): LogLine[] {
  if (!isMultiplexed(body)) {
    return body.toString('utf8').split('\n').filter((l) => l !== '').map((l) => ({ stream: 'stdout', ...splitTime(l) }));
  }
  const lines: LogLine[] = [];
  // Each frame is one log message with its own timestamp; a message longer than Docker's 16 KiB
  // buffer comes as several frames without a newline until the last, so those are joined.
  const pending: Record<Stream, { time: Date; text: string } | null> = { stdout: null, stderr: null };
  let offset = 0;
  while (offset + HEADER <= body.length) {
    const stream: Stream = body[offset] === 2 ? 'stderr' : 'stdout';
    const start = offset + HEADER;
    const end = Math.min(start + body.readUInt32BE(offset + 4), body.length);
    offset = end;
    const { time, line } = splitTime(body.toString('utf8', start, end));
    const current = pending[stream] ?? { time, text: '' };
    current.text += line;
    const parts = current.text.split('\n');
    const rest = parts.pop() ?? '';
    for (const part of parts) lines.push({ stream, time: current.time, line: trimCr(part) });
    pending[stream] = rest === '' ? null : { time: current.time, text: rest };
  }
  for (const stream of ['stdout', 'stderr'] as const) {
    const rest = pending[stream];
    if (rest !== null) lines.push({ stream, time: rest.time, line: trimCr(rest.text) });
  }
  // Docker copies stdout and stderr in separate goroutines, so the file order across streams can
  // disagree with the times the lines were received; the times are the better answer (stable sort).
  return lines.sort((a, b) => a.time.getTime() - b.time.getTime());
}

function isMultiplexed(body: Buffer): boolean {
  if (body.length < HEADER) return false;
  const kind = body[0];
  return (kind === 0 || kind === 1 || kind === 2) && body[1] === 0 && body[2] === 0 && body[3] === 0;
}

/** With timestamps=true a message starts with an RFC 3339 time and one space. */
function splitTime(text: string): { time: Date; line: string } {
  const space = text.indexOf(' ');
  const time = space > 0 ? new Date(text.slice(0, space)) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) return { time: new Date(0), line: trimCr(text) };
  return { time, line: trimCr(text.slice(space + 1)) };
}

function trimCr(text: string): string {
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}
