// The Idempotency-Key that mutating commands send: a new UUID per invocation, or the caller's own
// (`--idempotency-key K`) so that a CI job retrying the same step gets the first answer again.
import { randomUUID } from 'node:crypto';

export const idempotencyKeyArg = {
  type: 'string',
  description: 'Send this Idempotency-Key (default: a new UUID); a retry with the same key and request is answered, not redone',
  valueHint: 'KEY',
} as const;

export function idempotencyKey(given: string | undefined): string {
  return given && given.trim() !== '' ? given : randomUUID();
}
