// "Did you mean": the closest valid key within a small edit distance, or none.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closestKey, editDistance } from '../../api/closest-key.js';

const keys = ['app', 'image', 'env', 'processes', 'endpoints', 'deploy'];

const cases: [string, string | undefined][] = [
  ['proccesses', 'processes'],
  ['procesess', 'processes'],
  ['endpionts', 'endpoints'],
  ['imgae', 'image'],
  ['Image', 'image'],
  ['ap', 'app'],
  ['deplyo', 'deploy'],
  ['colour', undefined],
  ['tls', undefined],
  ['zzzzzzzzzz', undefined],
];

for (const [word, want] of cases) {
  test(`"${word}" suggests ${want === undefined ? 'nothing' : `"${want}"`}`, () => {
    assert.equal(closestKey(word, keys), want);
  });
}

test('a swap of two neighbours costs one edit', () => {
  assert.equal(editDistance('ab', 'ba'), 1);
  assert.equal(editDistance('kitten', 'sitting'), 3);
  assert.equal(editDistance('', 'abc'), 3);
});
