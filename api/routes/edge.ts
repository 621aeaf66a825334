// The edge config feed: the current snapshot, and a server-sent-event stream of new ones, for
// edge processes that run apart from the API (`pier edge --api URL`); the edges' reports of what
// they serve (POST /v1/edge/report, EDGE-REPORT.md); and the list of edges. The snapshot holds
// every app's endpoints and backends, so only org-wide tokens (edge or admin scope) may read it or
// report on it.
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { edgeReportSchema } from '../edge-report-schema.js';
import { listEdges } from '../edge-list.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { readJson } from '../request.js';
import { edgeViewSchema } from '../view-schemas.js';

describeRoute({
  method: 'get',
  path: '/v1/edge/config',
  scope: 'edge',
  summary: 'The current edge snapshot: listeners and backends, with its version (org-wide edge or admin tokens only)',
  response: { type: 'object', description: 'see docs/edge.md' },
});
describeRoute({
  method: 'get',
  path: '/v1/edge/watch',
  scope: 'edge',
  summary: 'Server-sent events: `config` with each new snapshot (id = version), `ping` every 15 s (org-wide edge or admin tokens only)',
  contentType: 'text/event-stream',
  response: { type: 'string' },
});

describeRoute({
  method: 'post',
  path: '/v1/edge/report',
  scope: 'edge',
  summary: "An edge's report: the snapshot version it serves, per-endpoint state (serving, or failed with the bind error) and counters, backend health (org-wide edge or admin tokens only)",
  description: 'Sent by `pier edge --api` and `pier server` after each apply, on each change, and every `heartbeatMs`. Unknown extra fields are accepted and kept. A body that does not match is 422 E_EDGE_REPORT_INVALID. See docs/edge.md.',
  body: edgeReportSchema,
  response: z.object({ ok: z.literal(true), heartbeatMs: z.number().describe('report at least this often') }),
  errors: [422],
});
describeRoute({
  method: 'get',
  path: '/v1/edges',
  scope: 'read',
  summary: 'The edges that reported to this API, live or not: applied snapshot version, last report age, endpoints they cannot serve (of apps this token sees)',
  response: z.object({ edges: z.array(edgeViewSchema), snapshotVersion: z.number().describe("this API's current snapshot version") }),
});

/** The snapshot covers every app: a token bound to one app may not read it, whatever its scope. */
function requireEdgeReader(auth: AuthContext): void {
  requireScope(auth, 'edge');
  if (auth.appId !== null) {
    throw new PierError('E_FORBIDDEN', 'this token is bound to one app, and the edge config covers every app', {
      status: 403,
      hint: 'use an org-wide token with the "edge" scope: `pier tokens create --scope edge`',
    });
  }
}

export function edgeRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.get('/edge/config', async (c) => {
    requireEdgeReader(c.get('auth'));
    return c.json(await deps.edgeFeed.rebuild());
  });

  r.post('/edge/report', async (c) => {
    requireEdgeReader(c.get('auth'));
    const parsed = edgeReportSchema.safeParse(await readJson(c.req));
    if (!parsed.success) {
      const problems = parsed.error.issues.slice(0, 20).map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
      throw new PierError('E_EDGE_REPORT_INVALID', `the edge report is not valid: ${problems.join('; ')}${parsed.error.issues.length > 20 ? ` (and ${parsed.error.issues.length - 20} more)` : ''}`, {
        status: 422,
        hint: 'the edge and the API disagree on the report format (EDGE-REPORT.md): run the same Pier version on both',
        details: parsed.error.issues.slice(0, 20).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
      });
    }
    const { heartbeatMs } = await deps.edgeReports.record(parsed.data);
    return c.json({ ok: true as const, heartbeatMs });
  });

  r.get('/edges', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const snapshotVersion = deps.edgeFeed.current().version;
    return c.json({ edges: await listEdges(deps.db, auth, snapshotVersion), snapshotVersion });
  });

  r.get('/edge/watch', (c) => {
    requireEdgeReader(c.get('auth'));
    return streamSSE(c, async (stream) => {
      let last = 0;
      const send = async (config: ReturnType<typeof deps.edgeFeed.current>) => {
        if (config.version <= last) return;
        last = config.version;
        await stream.writeSSE({ event: 'config', id: String(config.version), data: JSON.stringify(config) });
      };
      // Sends run one after another, so snapshots go out in order.
      let chain = Promise.resolve();
      const unsubscribe = deps.edgeFeed.subscribe((config) => {
        chain = chain.then(() => send(config)).catch(() => undefined);
      });
      const closed = new AbortController();
      stream.onAbort(() => {
        unsubscribe();
        closed.abort();
      });
      await send(await deps.edgeFeed.rebuild());
      while (!stream.aborted) {
        // A keep-alive every 15 s; a closed connection (or a stopping server) ends the wait at once.
        await sleep(15_000, closed.signal);
        if (!stream.aborted) await stream.writeSSE({ event: 'ping', data: '' });
      }
      unsubscribe();
    });
  });

  return r;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
