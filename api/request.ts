// Request parsing with zod: a bad body or query becomes E_BAD_REQUEST naming each field.
import type { z } from 'zod';
import { PierError } from './pier-error.js';

export function parseQuery<T extends z.ZodType>(schema: T, query: Record<string, string>): z.infer<T> {
  return parseWith(schema, query, 'query parameter');
}

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  return parseWith(schema, body, 'field');
}

export async function readJson(req: { json(): Promise<unknown> }): Promise<unknown> {
  try {
    return await req.json();
  } catch (err) {
    throw new PierError('E_BAD_REQUEST', 'the request body is not valid JSON', { status: 400, hint: 'send a JSON object with Content-Type: application/json', cause: err });
  }
}

function parseWith<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${what} ${i.path.join('.') || '(root)'}: ${i.message}`);
  throw new PierError('E_BAD_REQUEST', `the request is not valid: ${problems.join('; ')}`, {
    status: 400,
    hint: 'see docs/api.md for the request format',
    details: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
  });
}
