// What a database error means for the caller, in one place: a lost or refused connection is
// E_DATABASE_UNAVAILABLE (503, retry later), a unique violation names its constraint so callers
// map it to their own error, and text PostgreSQL cannot store is bad input. Used by the API's
// onError and by background tasks deciding whether to retry.
import { PierError } from './pier-error.js';

/** postgres.js's own connection codes, and the socket errors under them. */
const CONNECTION_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** SQLSTATEs that say the server went away or will not take us now (not our request's fault). */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300', '25P03']);

interface ErrorFields {
  code?: unknown;
  constraint_name?: unknown;
  constraint?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
}

/** The error and everything it wraps (drizzle wraps driver errors; a connect gives AggregateErrors). */
function* chain(err: unknown): Generator<ErrorFields> {
  const seen = new Set<unknown>();
  const stack = [err];
  while (stack.length) {
    const e = stack.pop();
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const fields = e as ErrorFields;
    yield fields;
    if (fields.cause !== undefined) stack.push(fields.cause);
    if (Array.isArray(fields.errors)) stack.push(...(fields.errors as unknown[]));
  }
}

/** The SQLSTATE (e.g. 23505) of the first database error in the chain, if any. */
export function sqlState(err: unknown): string | null {
  for (const e of chain(err)) if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  return null;
}

/** True when the error is the database being unreachable, not the request being wrong. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (const e of chain(err)) {
    if (e instanceof PierError) return e.code === 'E_DATABASE_UNAVAILABLE';
    const code = typeof e.code === 'string' ? e.code : '';
    if (CONNECTION_CODES.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith('08')) return true;
    // PGlite after close(): the embedded database is gone for this process.
    if (typeof e.message === 'string' && /PGlite is closed/i.test(e.message)) return true;
  }
  return false;
}

/**
 * True when the error ended the database session itself: the driver saw the connection close, or
 * the server sent a FATAL/PANIC error (which always closes the session). Nothing more may be sent
 * on that connection.
 */
export function endsSession(err: unknown): boolean {
  for (const e of chain(err)) {
    const severity = (e as { severity?: unknown }).severity;
    if (severity === 'FATAL' || severity === 'PANIC') return true;
    if (e.code === 'CONNECTION_CLOSED' || e.code === 'CONNECTION_ENDED' || e.code === 'CONNECTION_DESTROYED') return true;
  }
  return false;
}

/** The name of the unique constraint a write violated, or null when it was not a unique violation. */
export function uniqueViolation(err: unknown): string | null {
  for (const e of chain(err)) {
    if (e.code !== '23505') continue;
    const name = e.constraint_name ?? e.constraint;
    return typeof name === 'string' ? name : '';
  }
  return null;
}

/** The name of the foreign key a write violated, or null when it was not a foreign-key violation. */
export function foreignKeyViolation(err: unknown): string | null {
  for (const e of chain(err)) {
    if (e.code !== '23503') continue;
    const name = e.constraint_name ?? e.constraint;
    return typeof name === 'string' ? name : '';
  }
  return null;
}

export function databaseUnavailable(cause?: unknown): PierError {
  const code = cause === undefined ? null : connectionCode(cause);
  return new PierError('E_DATABASE_UNAVAILABLE', `the database is not reachable${code ? ` (${code})` : ''}`, {
    status: 503,
    hint: 'retry in a few seconds; if it lasts, check that PostgreSQL runs and that DATABASE_URL points at it',
    cause,
  });
}

/**
 * The PierError a database error stands for, or null when it is not one the API can explain
 * (then it is a bug: E_INTERNAL). Unique violations are left to the caller, who knows the names.
 */
export function classifyDatabaseError(err: unknown): PierError | null {
  if (err instanceof PierError) return err;
  if (isDatabaseUnavailable(err)) return databaseUnavailable(err);
  const state = sqlState(err);
  // untranslatable_character / character_not_in_repertoire: a NUL byte or broken text in a value.
  if (state === '22P05' || state === '22021') {
    return new PierError('E_BAD_REQUEST', 'a value holds a character the database cannot store (a NUL byte or invalid text)', {
      status: 422,
      hint: 'remove control characters such as \\u0000 from names, environment values and commands',
      cause: err,
    });
  }
  if (state === '40001' || state === '40P01') {
    return new PierError('E_DATABASE_BUSY', 'the database refused the change because of a concurrent one', {
      status: 503,
      hint: 'retry the request',
      cause: err,
    });
  }
  return null;
}

function connectionCode(err: unknown): string | null {
  for (const e of chain(err)) if (typeof e.code === 'string' && e.code) return e.code;
  return null;
}
