// Logs of an app's instances: JSON `{ lines }` up to now, or with `follow=1` newline-delimited
// JSON that streams until the client goes away.
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import { findInstance } from '../find-instance.js';
import { createLogReader, type LogSelection } from '../log-reader.js';
import { PierError } from '../pier-error.js';
import { parseQuery } from '../request.js';
import { describeRoute } from '../openapi.js';
import { parseSince } from '../since.js';
import { logLineViewSchema } from '../view-schemas.js';

const MAX_TAIL = 10_000;

const logsQuery = z.object({
  process: z.string().max(100).optional(),
  instance: z.string().max(200).optional(),
  since: z.string().max(64).optional(),
  tail: z.coerce.number().int().min(0).max(MAX_TAIL).optional(),
  grep: z.string().max(500).optional(),
  follow: z.enum(['1', '0', 'true', 'false']).optional(),
});

export function logRoutes(deps: ApiDeps) {
  const reader = createLogReader({ db: deps.db, runtime: deps.runtime, log: deps.log });
  const r = new Hono<ApiEnv>();

  r.get('/apps/:app/logs', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const app = await findApp(deps.db, auth, c.req.param('app'));
    const q = parseQuery(logsQuery, c.req.query());
    const follow = q.follow === '1' || q.follow === 'true';
    const since = q.since === undefined ? undefined : parseSince(q.since, new Date());
    const selection: LogSelection = {
      appId: app.id,
      process: q.process,
      instance: q.instance,
      grep: q.grep === undefined ? undefined : parseGrep(q.grep),
      since,
      // Without a bound a busy app's whole history would come back: default to a screenful.
      tail: q.tail ?? (follow ? 50 : since ? MAX_TAIL : 200),
    };
    if (q.instance) await findInstance(deps.db, app, q.instance);
    if (!follow) return c.json({ lines: await reader.read(selection) });

    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    c.header('cache-control', 'no-store');
    return stream(c, async (out) => {
      const done = new AbortController();
      out.onAbort(() => done.abort());
      c.req.raw.signal.addEventListener('abort', () => done.abort(), { once: true });
      await reader.follow(selection, done.signal, (line) => void out.write(`${JSON.stringify(line)}\n`));
      deps.log.debug({ app: app.name }, 'log follow ended');
    }, async (err) => {
      deps.log.warn({ err, app: app.name }, 'log follow ended with an error');
    });
  });

  return r;
}

function parseGrep(pattern: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new PierError('E_BAD_REQUEST', `grep is not a valid regular expression: ${(err as Error).message}`, {
      status: 400,
      hint: 'grep takes a JavaScript regular expression, e.g. grep=error|warn',
      details: [{ path: 'grep', message: (err as Error).message }],
    });
  }
}

describeRoute({
  method: 'get',
  path: '/v1/apps/:app/logs',
  scope: 'read',
  summary: "What an app's instances wrote, oldest first: `{ lines }`, or with follow=1 newline-delimited JSON until the client goes away",
  query: logsQuery,
  response: z.object({ lines: z.array(logLineViewSchema) }),
  errors: [404],
});
