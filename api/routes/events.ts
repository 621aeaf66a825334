// Every event the token may see, in one list: apps' events and the platform's own (system events:
// the engine, the database, edges, servers; api/system-monitor.ts). A token bound to one app sees
// that app's events only; one bound to environments (`pr-*`) the events of their apps and of the
// environments themselves; system events need an org-wide token bound to neither. Oldest first,
// paged by event id.
import { Hono } from 'hono';
import { inArray } from 'drizzle-orm';
import { z } from 'zod';
import type { Db } from '../../db/database.js';
import { apps, type Event } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findAppForAudit, requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { likePatterns } from '../environment-names.js';
import { decodeCursor, nextCursor, pageQuery } from '../cursor.js';
import type { EventFilter } from '../event-log.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseQuery } from '../request.js';
import { parseSince } from '../since.js';
import { eventViewSchema, pageSchema } from '../view-schemas.js';
import { eventView } from '../views.js';

export const allEventsQuery = pageQuery(100, 1000).extend({
  after: z.coerce.number().int().min(0).optional().describe('only events with a larger id'),
  type: z
    .string()
    .max(200)
    .regex(/^[a-z0-9_.]+(\.\*)?$/, 'a type such as deploy.succeeded, or a prefix such as runtime.*')
    .optional()
    .describe('one type, or every type under a prefix (`runtime.*`)'),
  app: z.string().max(200).optional().describe("only this app's events (its name, or its id `app_…`, which also reads a deleted app)"),
  system: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe('true: only system events (no app)'),
  since: z.string().max(64).optional().describe('only events since an age back from now (30s, 10m, 2h, 1d) or an ISO 8601 time'),
});

describeRoute({
  method: 'get',
  path: '/v1/events',
  scope: 'read',
  summary: 'Every event the token may see, oldest first: the events of its apps (a token bound to environments: of their apps, and their `environment.*` events) and, for org-wide tokens, system events (`app` empty)',
  query: allEventsQuery,
  response: pageSchema('events', eventViewSchema),
  errors: [403, 404],
});

export function eventRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.get('/events', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const q = parseQuery(allEventsQuery, c.req.query());
    const filter = await eventScope(deps.db, auth, q);
    const cursor = decodeCursor(q.cursor, z.object({ id: z.number().int().min(0) }));
    const afterId = Math.max(q.after ?? -1, cursor?.id ?? -1);
    const rows = await deps.events.list({ ...filter, afterId: afterId >= 0 ? afterId : undefined, limit: q.limit });
    const names = await appNamesOf(deps.db, rows);
    return c.json({
      events: rows.map((e) => eventView(e, e.appId ? (names.get(e.appId) ?? '') : '')),
      next_cursor: nextCursor(rows, q.limit, (e) => ({ id: e.id })),
    });
  });

  return r;
}

/** What a token may read of the event log, narrowed by the query. */
export async function eventScope(db: Db, auth: AuthContext, q: { type?: string | undefined; app?: string | undefined; system: boolean; since?: string | undefined }): Promise<EventFilter> {
  const base: EventFilter = { orgId: auth.orgId, type: q.type, since: q.since === undefined ? undefined : parseSince(q.since, new Date()) };
  if (q.system) {
    if (auth.environments) {
      throw new PierError('E_FORBIDDEN', `this token is bound to environments "${auth.environments}", and system events concern the whole platform`, {
        status: 403,
        hint: 'use an org-wide token with the "read" scope that is not bound to environments',
      });
    }
    if (auth.appId !== null) {
      throw new PierError('E_FORBIDDEN', 'this token is bound to one app, and system events concern the whole platform', {
        status: 403,
        hint: 'use an org-wide token with the "read" scope',
      });
    }
    if (q.app) throw new PierError('E_BAD_REQUEST', 'system events belong to no app: give system=true or app, not both', { status: 400, hint: 'drop one of them' });
    return { ...base, systemOnly: true };
  }
  if (q.app) return { ...base, appId: (await findAppForAudit(db, auth, q.app, false)).id };
  // A token bound to one app: that app's events, never the platform's.
  if (auth.appId !== null) return { ...base, appId: auth.appId };
  // One bound to environments (`pr-*`): their apps' events and their own, never the platform's.
  return auth.environments ? { ...base, environments: likePatterns(auth.environments) } : base;
}

/** The names of the apps that `rows` belong to (deleted apps keep theirs). */
export async function appNamesOf(db: Db, rows: Event[]): Promise<Map<string, string>> {
  const ids = [...new Set(rows.map((e) => e.appId).filter((id): id is string => id !== null))];
  if (ids.length === 0) return new Map();
  const found = await db.select({ id: apps.id, name: apps.name }).from(apps).where(inArray(apps.id, ids));
  return new Map(found.map((a) => [a.id, a.name]));
}
