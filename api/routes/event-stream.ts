// A live stream of an app's events (server-sent events) that resumes from Last-Event-ID.
// It reads from the database, so it sees events written by every server process; events
// recorded by this process wake it at once, others within a second.
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { eventView } from '../views.js';

describeRoute({
  method: 'get',
  path: '/v1/apps/:app/events/stream',
  scope: 'read',
  summary: "Server-sent events of an app's events (event = type, id = event id), resuming after the `Last-Event-ID` header or the `after` query parameter",
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
    const resume = Number(c.req.header('last-event-id') ?? c.req.query('after') ?? NaN);
    let after = Number.isInteger(resume) && resume >= 0 ? resume : undefined;
    const type = c.req.query('type');

    return streamSSE(c, async (stream) => {
      let wake: (() => void) | null = null;
      const unsubscribe = deps.events.subscribe((e) => {
        if (e.appId === app.id) wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      let idle = 0;
      while (!stream.aborted) {
        const rows = await deps.events.list({ orgId: auth.orgId, appId: app.id, afterId: after, type, limit: 500 });
        for (const e of rows) {
          await stream.writeSSE({ id: String(e.id), event: e.type, data: JSON.stringify(eventView(e)) });
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
  });

  return r;
}
