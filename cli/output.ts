// The only module that writes to stdout: JSON for scripts, tables for people. Progress, warnings
// and hints go to stderr, so `--json` output is nothing but JSON.
import { stderr, stdin, stdout } from 'node:process';
import { Duplex } from 'node:stream';

export function printJson(value: unknown): void {
  stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(text = ''): void {
  stdout.write(`${text}\n`);
}

/** A plain, aligned table; empty cells show as "-". */
export function printTable(headers: string[], rows: (string | number | null | undefined)[][]): void {
  const cells = rows.map((r) => r.map((v) => (v === null || v === undefined || v === '' ? '-' : String(v))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => r.map((v, i) => (i === r.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  stdout.write(`${line(headers)}\n`);
  for (const r of cells) stdout.write(`${line(r)}\n`);
}

/** Usage text (`--help`): citty colours it, which only a terminal that wants colour should see. */
export function printUsage(text: string): void {
  const colour = stdout.isTTY && !process.env.NO_COLOR;
  // eslint-disable-next-line no-control-regex
  stdout.write(`${colour ? text : text.replace(/\x1b\[[0-9;]*m/g, '')}\n`);
}

export function progress(text: string): void {
  stderr.write(`${text}\n`);
}

/**
 * A line that follows a quantity while it grows (an upload's size): rewritten in place every
 * 200 ms on a terminal, a plain line every 5 s otherwise; `done` prints the last value once.
 */
export function liveProgress(render: () => string): { done(final?: string): void } {
  const tty = stderr.isTTY === true;
  let last = '';
  const timer = setInterval(
    () => {
      const text = render();
      if (text === last) return;
      last = text;
      stderr.write(tty ? `\r\x1b[K${text}` : `${text}\n`);
    },
    tty ? 200 : 5000,
  );
  timer.unref();
  let ended = false;
  return {
    done(final) {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      stderr.write(tty && last !== '' ? `\r\x1b[K${final ?? render()}\n` : `${final ?? render()}\n`);
    },
  };
}

export function warn(text: string): void {
  stderr.write(`warning: ${text}\n`);
}

export function printError(code: string, message: string, hint?: string): void {
  stderr.write(`error: ${plain(message)} (${code})\n`);
  if (hint) stderr.write(`hint: ${plain(hint)}\n`);
}

/** Drops colour codes (citty puts some in its messages) unless stderr is a terminal that wants them. */
function plain(text: string): string {
  const colour = stderr.isTTY && !process.env.NO_COLOR;
  // eslint-disable-next-line no-control-regex
  return colour ? text : text.replace(/\x1b\[[0-9;]*m/g, '');
}

/** Bytes as they came, for a remote command's stdout (`pier exec`): no newline added. */
export function writeRaw(data: string | Uint8Array): void {
  stdout.write(data);
}

/** stdin and stdout as one stream, for `pier connect`: the tunnel's bytes, with back-pressure. */
export function rawStdio(): Duplex {
  return Duplex.from({ readable: stdin, writable: stdout });
}

/** A remote command's stderr, as it came. */
export function writeRawError(data: string | Uint8Array): void {
  stderr.write(data);
}
