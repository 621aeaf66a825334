// Reads a newline-delimited JSON stream (Docker's events and pull progress) into values: a chunk
// may hold several documents or half of one, so bytes are buffered until a newline arrives.

import { StringDecoder } from 'node:string_decoder';

/**
 * Yields each JSON document of `stream` in order. A line that is not JSON is passed to `onInvalid`
 * and skipped, so one bad line does not end a long-lived stream.
 */
export async function* readJsonLines(
  stream: AsyncIterable<Buffer | string>,
  onInvalid: (line: string, err: unknown) => void = () => {},
): AsyncGenerator<unknown> {
  // The decoder keeps a multi-byte character split across chunks intact.
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      const value = parseLine(line, onInvalid);
      if (value !== undefined) yield value;
    }
  }
  pending += decoder.end();
  const value = parseLine(pending, onInvalid);
  if (value !== undefined) yield value;
}

function parseLine(raw: string, onInvalid: (line: string, err: unknown) => void): unknown {
  const line = raw.trim();
  if (line === '') return undefined;
  try {
    return JSON.parse(line) as unknown;
  } catch (err) {
    onInvalid(line, err);
    return undefined;
  }
}
