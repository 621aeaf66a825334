// API errors to exit codes: a database outage (503 E_DATABASE_UNAVAILABLE) is exit 1, like every
// retryable outage, and never the usage or auth codes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXIT, exitCodeForApiError, RETRYABLE_API_ERRORS } from '../../cli/exit-codes.js';

const cases: [string, number, number][] = [
  ['E_DATABASE_UNAVAILABLE', 503, EXIT.error],
  ['E_RUNTIME_UNAVAILABLE', 503, EXIT.error],
  ['E_CONFLICT', 409, EXIT.error],
  ['E_MANIFEST_INVALID', 422, EXIT.usage],
  ['E_BAD_REQUEST', 422, EXIT.usage],
  ['E_UNAUTHENTICATED', 401, EXIT.auth],
  ['E_FORBIDDEN', 403, EXIT.auth],
];

for (const [code, status, exit] of cases) {
  test(`${code} (${status}) exits ${exit}`, () => assert.equal(exitCodeForApiError(code, status), exit));
}

test('a database outage is retryable', () => assert.ok(RETRYABLE_API_ERRORS.has('E_DATABASE_UNAVAILABLE')));
