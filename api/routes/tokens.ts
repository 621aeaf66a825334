// API tokens: create (the secret is in that one answer only; its hash is stored), list, revoke,
// and "which token is this" for `pier login`. Managing tokens needs an org-wide admin token.
// Creating and revoking write the token and its audit event in one transaction.
import { checkEnvironmentPattern } from '../environment-names.js';
import { Hono } from 'hono';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { z } from 'zod';
import { apps, TOKEN_SCOPES, tokens, type Token } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { decodeCursor, nextCursor, pageQuery } from '../cursor.js';
import { newId } from '../ids.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, parseQuery, readJson } from '../request.js';
import { generateTokenSecret, hashTokenSecret } from '../token-secret.js';
import { pageSchema, tokenViewSchema } from '../view-schemas.js';
import { createTransactions } from '../transactions.js';
import { tokenView } from '../views.js';

const DAY = 86_400_000;
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY, w: 7 * DAY };

const createBody = z.object({
  name: z.string().min(1).max(100).optional(),
  scope: z.enum(TOKEN_SCOPES),
  /** Bind the token to one app: it sees every other app as not found. */
  app: z.string().max(40).optional(),
  /** Bind the token to environments: names and `*` wildcards, comma-separated (`pr-*`); it is refused in any other. */
  environments: z.string().max(200).optional(),
  expiresIn: z
    .string()
    .regex(/^\d+(s|m|h|d|w)$/, 'must be a duration like "30s", "90m", "12h", "30d" or "8w"')
    .refine((v) => toMs(v) > 0 && toMs(v) <= 3650 * DAY, 'must be between 1s and 3650d')
    .optional()
    .describe('when the token stops working, from now; never when unset'),
});

const listQuery = pageQuery(100, 1000);

const rotateBody = z.object({
  overlap: z
    .string()
    .regex(/^\d+(s|m|h)$/, 'must be a duration like "30s", "5m" or "1h"')
    .refine((v) => toMs(v) <= DAY, 'must be at most 24h')
    .optional()
    .describe('how long the old secret keeps working beside the new one; none when unset (it stops at once)'),
});

describeRoute({
  method: 'post',
  path: '/v1/tokens',
  scope: 'admin',
  summary: 'Create a token; the answer holds its secret (`pier_…`), which is shown this once and never stored',
  description: 'Needs an org-wide admin token (an app-bound token cannot create tokens). The answer is not kept for Idempotency-Key replays: each call makes a new token.',
  body: createBody,
  response: z.object({ token: tokenViewSchema, secret: z.string() }),
  status: 201,
  errors: [404],
});
describeRoute({ method: 'get', path: '/v1/tokens', scope: 'admin', summary: "The org's tokens that are not revoked, oldest first", query: listQuery, response: pageSchema('tokens', tokenViewSchema) });
describeRoute({ method: 'get', path: '/v1/tokens/current', scope: 'any', summary: 'The token that made this request (any scope): what `pier login` checks', response: z.object({ token: tokenViewSchema }) });
describeRoute({
  method: 'post',
  path: '/v1/tokens/:id/rotate',
  scope: 'admin',
  summary: 'Give a token a new secret (same id, name, scope, app and expiry); the old secret stops working at once, or after `overlap`',
  description: 'An org-wide admin token may rotate any token of the org, itself included (what `pier admin-token rotate` does).',
  body: rotateBody,
  response: z.object({ token: tokenViewSchema, secret: z.string() }),
  errors: [404],
});
describeRoute({ method: 'delete', path: '/v1/tokens/:id', scope: 'admin', summary: 'Revoke a token; it stops working at once. Revoking it again changes nothing', response: z.object({ token: tokenViewSchema }), errors: [404] });

export function tokenRoutes(deps: ApiDeps) {
  const { db } = deps;
  const transactions = createTransactions({ db, events: deps.events });
  const r = new Hono<ApiEnv>();

  r.post('/tokens', async (c) => {
    const auth = manager(c.get('auth'));
    const body = parseBody(createBody, await readJson(c.req));
    if (body.scope === 'edge' && body.app) {
      throw new PierError('E_BAD_REQUEST', 'an edge token cannot be bound to an app', { status: 400, hint: 'drop `app`: edge nodes serve every app' });
    }
    if (body.scope === 'connect' && !body.app) {
      throw new PierError('E_BAD_REQUEST', 'a connect token is bound to one app', { status: 400, hint: 'name the app it may tunnel to: `pier tokens create --scope connect --app APP`' });
    }
    const app = body.app ? await findApp(db, auth, body.app) : null;
    const secret = generateTokenSecret();
    const row = await transactions.run(async (t) => {
      const [inserted] = await t.tx
        .insert(tokens)
        .values({
          id: newId('tok'),
          orgId: auth.orgId,
          name: body.name ?? `${body.scope}${app ? ` for ${app.name}` : ''}`,
          hash: hashTokenSecret(secret),
          scope: body.scope,
          appId: app?.id ?? null,
          environments: body.environments ? checkEnvironmentPattern(body.environments) : null,
          expiresAt: body.expiresIn ? new Date(Date.now() + toMs(body.expiresIn)) : null,
        })
        .returning();
      if (!inserted) throw new Error('token insert returned no row');
      await t.record({
        orgId: auth.orgId,
        appId: inserted.appId,
        type: 'token.created',
        reason: 'admin',
        message: `token ${inserted.id} (${inserted.name}, scope ${inserted.scope}) created by ${auth.tokenId}`,
        data: { tokenId: inserted.id, scope: inserted.scope, name: inserted.name, createdBy: auth.tokenId, expiresAt: inserted.expiresAt },
      });
      return inserted;
    });
    // The secret must not be kept anywhere, not even as a stored Idempotency-Key answer.
    c.header('cache-control', 'no-store');
    return c.json({ token: tokenView(row, app?.name ?? null), secret }, 201);
  });

  r.get('/tokens', async (c) => {
    const auth = manager(c.get('auth'));
    const q = parseQuery(listQuery, c.req.query());
    const after = decodeCursor(q.cursor, z.object({ t: z.string().max(64), id: z.string().max(100) }));
    const rows = await db
      .select({ token: tokens, app: apps.name, t: sql<string>`${tokens.createdAt}::text` })
      .from(tokens)
      .leftJoin(apps, eq(apps.id, tokens.appId))
      .where(and(eq(tokens.orgId, auth.orgId), isNull(tokens.revokedAt), after ? sql`(${tokens.createdAt}, ${tokens.id}) > (${after.t}::timestamptz, ${after.id})` : undefined))
      .orderBy(asc(tokens.createdAt), asc(tokens.id))
      .limit(q.limit);
    return c.json({ tokens: rows.map((r) => tokenView(r.token, r.app)), next_cursor: nextCursor(rows, q.limit, (r) => ({ t: r.t, id: r.token.id })) });
  });

  r.get('/tokens/current', async (c) => {
    const auth = c.get('auth');
    const found = await byId(auth.orgId, auth.tokenId);
    if (!found) throw new Error('the authenticated token is missing');
    return c.json({ token: tokenView(found.token, found.app) });
  });

  r.post('/tokens/:id/rotate', async (c) => {
    const auth = manager(c.get('auth'));
    const body = parseBody(rotateBody, await readJson(c.req));
    const found = await byId(auth.orgId, c.req.param('id'));
    if (!found || found.token.revokedAt) {
      throw new PierError('E_TOKEN_NOT_FOUND', `there is no live token "${c.req.param('id')}"`, { status: 404, hint: '`pier tokens list` shows the tokens; a revoked token cannot be rotated' });
    }
    const secret = generateTokenSecret();
    const overlapMs = body.overlap ? toMs(body.overlap) : 0;
    const now = new Date();
    const row = await transactions.run(async (t) => {
      const [updated] = await t.tx
        .update(tokens)
        .set({
          hash: hashTokenSecret(secret),
          previousHash: overlapMs > 0 ? found.token.hash : null,
          previousValidUntil: overlapMs > 0 ? new Date(now.getTime() + overlapMs) : null,
          rotatedAt: now,
        })
        .where(and(eq(tokens.id, found.token.id), isNull(tokens.revokedAt)))
        .returning();
      if (!updated) throw new PierError('E_TOKEN_NOT_FOUND', `token "${found.token.id}" was revoked meanwhile`, { status: 404 });
      await t.record({
        orgId: auth.orgId,
        appId: updated.appId,
        type: 'token.rotated',
        reason: 'admin',
        message: `token ${updated.id} (${updated.name}) rotated by ${auth.tokenId}; the old secret ${overlapMs > 0 ? `works until ${updated.previousValidUntil?.toISOString()}` : 'stopped working'}`,
        data: { tokenId: updated.id, rotatedBy: auth.tokenId, overlapMs },
      });
      return updated;
    });
    c.header('cache-control', 'no-store');
    return c.json({ token: tokenView(row, found.app), secret });
  });

  r.delete('/tokens/:id', async (c) => {
    const auth = manager(c.get('auth'));
    const found = await byId(auth.orgId, c.req.param('id'));
    if (!found) {
      throw new PierError('E_TOKEN_NOT_FOUND', `there is no token "${c.req.param('id')}"`, { status: 404, hint: '`pier tokens list` shows the tokens' });
    }
    if (found.token.revokedAt) return c.json({ token: tokenView(found.token, found.app) });
    const row = await transactions.run(async (t) => {
      const [updated] = await t.tx
        .update(tokens)
        .set({ revokedAt: new Date() })
        .where(and(eq(tokens.id, found.token.id), isNull(tokens.revokedAt)))
        .returning();
      if (updated) {
        await t.record({
          orgId: auth.orgId,
          appId: updated.appId,
          type: 'token.revoked',
          reason: 'admin',
          message: `token ${updated.id} (${updated.name}) revoked by ${auth.tokenId}`,
          data: { tokenId: updated.id, revokedBy: auth.tokenId },
        });
      }
      return updated;
    });
    return c.json({ token: tokenView(row ?? found.token, found.app) });
  });

  async function byId(orgId: string, id: string): Promise<{ token: Token; app: string | null } | undefined> {
    const [row] = await db
      .select({ token: tokens, app: apps.name })
      .from(tokens)
      .leftJoin(apps, eq(apps.id, tokens.appId))
      .where(and(eq(tokens.orgId, orgId), eq(tokens.id, id)));
    return row;
  }

  return r;
}

/** Tokens are managed with an admin token for the whole org. */
function manager(auth: AuthContext): AuthContext {
  requireScope(auth, 'admin');
  if (auth.appId !== null) {
    throw new PierError('E_FORBIDDEN', 'a token bound to an app cannot manage tokens', { status: 403, hint: 'use an org-wide admin token' });
  }
  return auth;
}

function toMs(text: string): number {
  const m = /^(\d+)(s|m|h|d|w)$/.exec(text);
  return m ? Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0) : 0;
}
