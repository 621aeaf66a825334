// Live streams of events (server-sent events) that resume from Last-Event-ID: one app's, or every
// event the token may see. They read from the database, so they see events written by every
// server process; events recorded by this process wake them at once, others within a second.
import type { Context } from 'hono';
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Event } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import type { EventFilter } from '../event-log.js';
import { describeRoute } from '../openapi.js';
import { parseQuery } from '../request.js';
import { eventView } from '../views.js';
import { allEventsQuery, appNamesOf, eventScope } from './events.js';

describeRoute({
  method: 'get',
  path: '/v1/apps/:app/events/stream',
  scope: 'read',
  summary: "Server-sent events of an app's events (event = type, id = event id), resuming after the `Last-Event-ID` header or the `after` query parameter",
  contentType: 'text/event-stream',
  response: { type: 'string' },
  errors: [404],
});
describeRoute({
  method: 'get',
  path: '/v1/events/stream',
  scope: 'read',
  summary: 'Server-sent events of every event the token may see (as GET /v1/events), resuming after the `Last-Event-ID` header or the `after` query parameter',
  query: allEventsQuery.omit({ cursor: true, limit: true }),
  contentType: 'text/event-stream',
  response: { type: 'string' },
  errors: [404],
});

export function eventStreamRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.get('/apps/:app/events/stream', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(deps.db, auth, c.req.param('app'));
    const filter = { orgId: auth.orgId, appId: app.id, type: c.req.query('type') };
    return follow(c, deps, filter, (e) => e.appId === app.id, async () => new Map([[app.id, app.name]]));
  });

  r.get('/events/stream', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const q = parseQuery(allEventsQuery.omit({ cursor: true, limit: true }), c.req.query());
    const filter = await eventScope(deps.db, auth, q);
    return follow(c, deps, filter, (e) => e.orgId === auth.orgId, (rows) => appNamesOf(deps.db, rows));
  });

  return r;
}

/** Sends the events of `filter` after the resume point, then new ones as they are written. */
function follow(c: Context<ApiEnv>, deps: ApiDeps, filter: EventFilter, concerns: (e: Event) => boolean, names: (rows: Event[]) => Promise<Map<string, string>>): Response {
  const resume = Number(c.req.header('last-event-id') ?? c.req.query('after') ?? NaN);
  let after = Number.isInteger(resume) && resume >= 0 ? resume : undefined;
  return streamSSE(c, async (stream) => {
    let wake: (() => void) | null = null;
    const unsubscribe = deps.events.subscribe((e) => {
      if (concerns(e)) wake?.();
    });
    stream.onAbort(() => {
      unsubscribe();
      wake?.();
    });
    let idle = 0;
    while (!stream.aborted) {
      const rows = await deps.events.list({ ...filter, afterId: after, limit: 500 });
      const appNames = rows.length ? await names(rows) : new Map<string, string>();
      for (const e of rows) {
        await stream.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(eventView(e, e.appId ? (appNames.get(e.appId) ?? '') : '')) });
        after = e.id;
      }
      if (rows.length === 500) continue;
      if (++idle % 15 === 0) await stream.writeSSE({ event: 'ping', data: '' });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
    }
    unsubscribe();
  });
}
