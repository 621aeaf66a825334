// Idempotency-Key for mutating requests: the first response under a key is stored and replayed
// for a retry of the same request; the same key with a different request is refused.
import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { idempotencyKeys } from '../db/schema/index.js';
import type { ApiEnv } from './auth.js';
import { PierError } from './pier-error.js';

export function idempotency(db: Db): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const key = c.req.header('idempotency-key');
    // A build streams a context of up to hundreds of MiB and is not replayed: a deploy of its result is.
    if (c.req.method !== 'POST' || !key || c.req.path === '/v1/builds') return next();
    if (key.length > 200) {
      throw new PierError('E_BAD_REQUEST', 'the Idempotency-Key is longer than 200 characters', { status: 400, hint: 'use a UUID' });
    }
    const { orgId } = c.get('auth');
    const body = await c.req.raw.clone().text();
    const requestHash = createHash('sha256').update(`${c.req.method} ${c.req.path}\n${body}`).digest('hex');
    const [seen] = await db
      .select()
      .from(idempotencyKeys)
      .where(and(eq(idempotencyKeys.orgId, orgId), eq(idempotencyKeys.key, key)));
    if (seen) {
      if (seen.requestHash !== requestHash) {
        throw new PierError('E_IDEMPOTENCY_KEY_REUSED', `the Idempotency-Key "${key}" was used for a different request`, {
          status: 422,
          hint: 'use a new key for each distinct request',
        });
      }
      c.header('idempotent-replayed', 'true');
      return c.json(seen.body as object, seen.status as 200);
    }
    await next();
    // Only successful answers are kept: a failed request may be retried under the same key. An
    // answer marked no-store (a new token's secret) is never kept.
    if (c.res.status < 300 && c.res.headers.get('content-type')?.includes('application/json') && !c.res.headers.get('cache-control')?.includes('no-store')) {
      const stored = await c.res.clone().json();
      await db.insert(idempotencyKeys).values({ orgId, key, requestHash, status: c.res.status, body: stored }).onConflictDoNothing();
    }
  };
}
