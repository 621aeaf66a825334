// The HTTP API: routes under /v1 behind bearer-token auth, /healthz for readiness, and the one
// place where errors become `{ "error": { code, message, hint } }` with their status.
import { Hono } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ApiDeps } from './api-deps.js';
import { authenticate, type ApiEnv } from './auth.js';
import { classifyDatabaseError } from './database-errors.js';
import { idempotency } from './idempotency.js';
import { isPierError } from './pier-error.js';
import { appRoutes } from './routes/apps.js';
import { deployRoutes } from './routes/deploys.js';
import { describeRoutes } from './routes/describe.js';
import { eventStreamRoutes } from './routes/event-stream.js';
import { edgeRoutes } from './routes/edge.js';
import { execRoutes } from './routes/exec.js';
import { logRoutes } from './routes/logs.js';
import { openApiRoutes } from './routes/openapi.js';
import { tokenRoutes } from './routes/tokens.js';
import type { ErrorBody } from './views.js';

export function createApi(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get('/healthz', (c) => (deps.ready() ? c.json({ ok: true }) : c.json(errorBody('E_NOT_READY', 'the server is starting'), 503)));

  app.route('/', openApiRoutes());
  app.use('/v1/*', authenticate(deps.db));
  app.use('/v1/*', idempotency(deps.db));
  app.route('/v1', appRoutes(deps));
  app.route('/v1', deployRoutes(deps));
  app.route('/v1', edgeRoutes(deps));
  app.route('/v1', logRoutes(deps));
  app.route('/v1', execRoutes(deps));
  app.route('/v1', describeRoutes(deps));
  app.route('/v1', eventStreamRoutes(deps));
  app.route('/v1', tokenRoutes(deps));

  app.notFound((c) => c.json(errorBody('E_ROUTE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, 'see docs/api.md for the routes'), 404));

  app.onError((err, c) => {
    // A database error that means something (connection lost, bad text) reads as its PierError.
    const known = isPierError(err) ? err : classifyDatabaseError(err);
    if (known) {
      const body = errorBody(known.code, known.message, known.hint, known.details);
      if (known.status >= 500) deps.log.error({ err, path: c.req.path }, 'request failed');
      return c.json(body, known.status as ContentfulStatusCode);
    }
    deps.log.error({ err, method: c.req.method, path: c.req.path }, 'unexpected error');
    return c.json(errorBody('E_INTERNAL', 'the server hit an unexpected error; its log has the details'), 500);
  });

  return app;
}

function errorBody(code: string, message: string, hint?: string, details?: unknown): ErrorBody {
  return { error: { code, message, ...(hint ? { hint } : {}), ...(details !== undefined ? { details } : {}) } };
}
