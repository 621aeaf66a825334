// The Idempotency-Key that mutating commands send: a new UUID per invocation, or the caller's own
// (`--idempotency-key K`) so that a CI job retrying the same step gets the first answer again.
import { randomUUID } from 'node:crypto';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

export const idempotencyKeyArg = {
  type: 'string',
  description: 'Send this Idempotency-Key (default: a new UUID); a retry with the same key and request is answered, not redone',
  valueHint: 'KEY',
} as const;

export function idempotencyKey(given: string | undefined): string {
  if (!given || given.trim() === '') return randomUUID();
  // It travels in a header: a key that cannot would otherwise fail as if the API were unreachable.
  if (!/^[\x21-\x7e]{1,200}$/.test(given)) {
    throw new CliError('E_USAGE', '--idempotency-key must be 1 to 200 visible ASCII characters, without spaces', { hint: 'use a UUID, e.g. from `uuidgen`', exitCode: EXIT.usage });
  }
  return given;
}
