// The edge config feed: the current snapshot, and a server-sent-event stream of new ones, for
// edge processes that run apart from the API (`pier edge --api URL`). The snapshot holds every
// app's endpoints and backends, so only org-wide tokens (edge or admin scope) may read it.
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';

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
