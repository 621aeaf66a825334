// A pino logger whose lines are kept in memory as parsed objects, for tests that check what the
// edge logs (the connection close line) without touching stdout.

import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface CapturedLog {
  log: Logger;
  lines: Record<string, unknown>[];
  /** The lines with `msg` equal to `message`. */
  messages(message: string): Record<string, unknown>[];
}

export function captureLog(level = 'info'): CapturedLog {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  // A plain Writable whose write completes at once: lines land before the logging call returns.
  const log = pino({ level }, stream);
  return { log, lines, messages: (message) => lines.filter((l) => l.msg === message) };
}
