// Request parsing with zod: a bad body or query becomes E_BAD_REQUEST naming each field; text
// with a NUL or another control character becomes 422 E_INVALID_CHARACTER naming where it is.
// Errors list at most MAX_LISTED problems and say how many there were.
import type { z } from 'zod';
import { controlCharacterProblems, type TextProblem } from './control-characters.js';
import { PierError } from './pier-error.js';

/** Problems an error lists; the message says how many more there were. */
const MAX_LISTED = 50;
const MAX_TEXT = 300;

export function parseQuery<T extends z.ZodType>(schema: T, query: Record<string, string>): z.infer<T> {
  return parseWith(schema, query, 'query parameter');
}

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  return parseWith(schema, body, 'field');
}

/**
 * The JSON body, with every string in it checked for control characters (they would reach
 * Docker or the database). The body's size is bounded before this by api/app.ts's body limit.
 */
export async function readJson(req: { json(): Promise<unknown> }): Promise<unknown> {
  let body: unknown;
  try {
    body = await req.json();
  } catch (err) {
    if (err instanceof PierError) throw err;
    throw new PierError('E_BAD_REQUEST', 'the request body is not valid JSON', { status: 400, hint: 'send a JSON object with Content-Type: application/json', cause: err });
  }
  rejectControlCharacters(body, 'field');
  return body;
}

/** Throws 422 E_INVALID_CHARACTER naming each string of `value` that holds a refused character. */
export function rejectControlCharacters(value: unknown, what: string): void {
  const { problems, total } = controlCharacterProblems(value, MAX_LISTED);
  if (total > 0) throw invalidCharacters(problems, total, what);
}

export function invalidCharacters(problems: TextProblem[], total: number, what: string): PierError {
  const listed = problems.map((p) => `${what} ${clip(p.path)} ${clip(p.message)}`);
  return new PierError('E_INVALID_CHARACTER', `${listed.join('; ')}${more(total, problems.length)}`, {
    status: 422,
    hint: 'remove the character: NUL is never accepted, and other control characters only as tab, LF or CR in free text',
    details: problems.map((p) => ({ path: clip(p.path), message: clip(p.message) })),
  });
}

function parseWith<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, MAX_LISTED).map((i) => ({ path: clip(i.path.map(String).join('.')), message: clip(i.message) }));
  const problems = issues.map((i) => `${what} ${i.path || '(root)'}: ${i.message}`);
  throw new PierError('E_BAD_REQUEST', `the request is not valid: ${problems.join('; ')}${more(result.error.issues.length, issues.length)}`, {
    status: 400,
    hint: 'see docs/api.md for the request format',
    details: issues,
  });
}

function more(total: number, listed: number): string {
  return total > listed ? ` (and ${total - listed} more problems)` : '';
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}
