// createSniMatcher: table-driven matching (exact over wildcard, one-label wildcards, case, fallback)
// and the errors raised at construction.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSniMatcher } from '../../proxy/sni-matcher.js';

const matcher = createSniMatcher(
  [
    { names: ['a.example.com', 'API.Example.com'], target: 'exact-a' },
    { names: ['*.example.com'], target: 'wild-example' },
    { names: ['*.b.example.com', 'example.com'], target: 'wild-b' },
    { names: ['*.Shop.Test'], target: 'wild-shop' },
  ],
  'fallback',
);

const cases: [string | null, string | undefined][] = [
  ['a.example.com', 'exact-a'],
  ['api.example.com', 'exact-a'],
  ['A.EXAMPLE.COM', 'exact-a'],
  ['z.example.com', 'wild-example'],
  ['Z.Example.Com', 'wild-example'],
  ['example.com', 'wild-b'],
  ['c.b.example.com', 'wild-b'],
  ['b.example.com', 'wild-example'],
  ['x.c.b.example.com', 'fallback'],
  ['a.b.c.example.com', 'fallback'],
  ['x.shop.test', 'wild-shop'],
  ['shop.test', 'fallback'],
  ['.example.com', 'fallback'],
  ['other.org', 'fallback'],
  ['', 'fallback'],
  [null, 'fallback'],
];

for (const [name, expected] of cases) {
  test(`${JSON.stringify(name)} goes to ${expected}`, () => {
    assert.equal(matcher.match(name), expected);
  });
}

test('without a fallback, no match and a null name give undefined', () => {
  const strict = createSniMatcher([{ names: ['*.example.com'], target: 1 }]);
  assert.equal(strict.match('a.example.com'), 1);
  assert.equal(strict.match('example.com'), undefined);
  assert.equal(strict.match(null), undefined);
});

test('an exact name wins over a wildcard whatever the route order', () => {
  const m = createSniMatcher([
    { names: ['*.example.com'], target: 'wild' },
    { names: ['a.example.com'], target: 'exact' },
  ]);
  assert.equal(m.match('a.example.com'), 'exact');
  assert.equal(m.match('b.example.com'), 'wild');
});

test('bad patterns are refused at construction with a message naming them', () => {
  const bad = ['', '*', '*.', '*example.com', 'a*.example.com', '*.*.example.com', 'a.*.com', 'a..example.com', '.example.com',
    'example.com.', 'under_score.com', 'sp ace.com', 'é.example.com', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`];
  for (const pattern of bad) {
    assert.throws(() => createSniMatcher([{ names: [pattern], target: 0 }]), (err: Error) => {
      assert.match(err.message, /invalid name pattern/);
      assert.ok(err.message.includes(JSON.stringify(pattern)), err.message);
      return true;
    }, pattern);
  }
});

test('a name claimed by two routes is refused, in any case and for wildcards too', () => {
  assert.throws(() => createSniMatcher([{ names: ['a.example.com'], target: 1 }, { names: ['A.Example.com'], target: 2 }]),
    /sni name "a.example.com" is claimed by routes 0 and 1/);
  assert.throws(() => createSniMatcher([{ names: ['*.example.com'], target: 1 }, { names: ['x.test', '*.EXAMPLE.com'], target: 2 }]),
    /sni name "\*.example.com" is claimed by routes 0 and 1/);
  // The same name twice within one route, and a wildcard beside its bare suffix, are not conflicts.
  const m = createSniMatcher([{ names: ['a.example.com', 'a.example.com'], target: 1 }, { names: ['*.a.example.com'], target: 2 }]);
  assert.equal(m.match('x.a.example.com'), 2);
});

test('a route without names is refused', () => {
  assert.throws(() => createSniMatcher([{ names: [], target: 1 }]), /sni route 0 has no names/);
});
