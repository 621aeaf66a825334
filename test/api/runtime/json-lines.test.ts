// readJsonLines: documents split or packed across chunks come out whole and in order.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readJsonLines } from '../../../api/runtime/json-lines.js';

async function collect(chunks: (string | Buffer)[], invalid: string[] = []): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const value of readJsonLines((async function* () { yield* chunks; })(), (line) => invalid.push(line))) out.push(value);
  return out;
}

const cases: { name: string; chunks: (string | Buffer)[]; want: unknown[] }[] = [
  { name: 'one document per chunk', chunks: ['{"a":1}\n', '{"a":2}\n'], want: [{ a: 1 }, { a: 2 }] },
  { name: 'several documents in one chunk', chunks: ['{"a":1}\n{"a":2}\n{"a":3}\n'], want: [{ a: 1 }, { a: 2 }, { a: 3 }] },
  { name: 'a document split across chunks', chunks: ['{"a":', '1}\n{"b"', ':2}\n'], want: [{ a: 1 }, { b: 2 }] },
  { name: 'a last document without a newline', chunks: ['{"a":1}\n{"a":2}'], want: [{ a: 1 }, { a: 2 }] },
  { name: 'blank lines and CRLF', chunks: ['\n{"a":1}\r\n\r\n'], want: [{ a: 1 }] },
  { name: 'a multi-byte character split between chunks', chunks: [Buffer.from('{"s":"é'.normalize()).subarray(0, 7), Buffer.from('{"s":"é"}\n').subarray(7)], want: [{ s: 'é' }] },
];

for (const c of cases) {
  test(`reads ${c.name}`, async () => {
    assert.deepEqual(await collect(c.chunks), c.want);
  });
}

test('a line that is not JSON is reported and skipped without ending the stream', async () => {
  const invalid: string[] = [];
  assert.deepEqual(await collect(['{"a":1}\nnot json\n{"a":2}\n'], invalid), [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(invalid, ['not json']);
});
