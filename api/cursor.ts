// Pagination of lists: `limit` and an opaque `cursor` in, `next_cursor` out. A cursor is the sort
// key of the last item sent, base64url-encoded JSON; clients must not read or build one.
import { z } from 'zod';
import { PierError } from './pier-error.js';

/** The `limit` and `cursor` query parameters of a list route. */
export function pageQuery(defaultLimit: number, maxLimit: number) {
  return z.object({
    limit: z.coerce.number().int().min(1).max(maxLimit).default(defaultLimit),
    cursor: z.string().max(500).optional(),
  });
}

export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key inside a cursor, or undefined without one; a cursor that is not ours is E_BAD_REQUEST. */
export function decodeCursor<T>(cursor: string | undefined, schema: z.ZodType<T>): T | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new PierError('E_BAD_REQUEST', 'the cursor is not one this list returned', {
      status: 400,
      hint: 'pass the next_cursor of the previous page unchanged, or no cursor for the first page',
    });
  }
  return parsed.data;
}

/** `next_cursor` for a page: the last item's key when the page is full, else null (the end). */
export function nextCursor<T>(rows: T[], limit: number, key: (last: T) => Record<string, string | number>): string | null {
  const last = rows[rows.length - 1];
  return rows.length === limit && last !== undefined ? encodeCursor(key(last)) : null;
}
