// parseSince: the `since` query of the logs and events routes, a duration back from now or an ISO time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSince } from '../../api/since.js';

const now = new Date('2026-01-02T12:00:00.000Z');

test('durations count back from now and ISO times are taken as they are', () => {
  const cases: [string, string][] = [
    ['30s', '2026-01-02T11:59:30.000Z'],
    ['10m', '2026-01-02T11:50:00.000Z'],
    ['2h', '2026-01-02T10:00:00.000Z'],
    ['1d', '2026-01-01T12:00:00.000Z'],
    ['2026-01-02T03:04:05Z', '2026-01-02T03:04:05.000Z'],
    ['2026-01-02', '2026-01-02T00:00:00.000Z'],
  ];
  for (const [input, expected] of cases) assert.equal(parseSince(input, now).toISOString(), expected, input);
});

test('anything else is a bad request that says what is accepted', () => {
  for (const input of ['yesterday', '10', '10 m', '-5m', '1w', '2026-13-45T00:00:00Z']) {
    assert.throws(() => parseSince(input, now), (err: Error & { code?: string; status?: number }) => {
      assert.equal(err.code, 'E_BAD_REQUEST', input);
      assert.equal(err.status, 400);
      assert.match(err.message, /30s, 10m, 2h/);
      return true;
    });
  }
});
