// GET /metrics in server mode: Prometheus text with the API's, the scheduler's, the database's and
// the edges' figures. It shows every org's request and scheduler figures, so it needs an org-wide
// token with the read scope (Prometheus: `authorization: { credentials_file: … }`).
import { Hono } from 'hono';
import type { ApiDeps } from '../api-deps.js';
import { authenticate, requireScope, type ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { PROMETHEUS_CONTENT_TYPE, renderFamilies } from '../prometheus-text.js';
import type { RequestMetrics } from '../request-metrics.js';

describeRoute({
  method: 'get',
  path: '/metrics',
  scope: 'read',
  summary: "Prometheus text: API requests and latency, the scheduler's queue and passes, the lock session, the database pool, and each edge's latest report (org-wide read token)",
  contentType: PROMETHEUS_CONTENT_TYPE,
  response: { type: 'string' },
});

/** Without the server's figures (an API built alone, in tests) only the request figures are shown. */
export function metricsRoutes(deps: ApiDeps, requests: RequestMetrics) {
  const r = new Hono<ApiEnv>();
  r.use('/metrics', authenticate(deps.db));
  r.get('/metrics', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    if (auth.appId !== null) {
      throw new PierError('E_FORBIDDEN', 'this token is bound to one app, and /metrics covers the whole server', {
        status: 403,
        hint: 'use an org-wide token with the "read" scope: `pier tokens create --scope read --name prometheus`',
      });
    }
    const text = renderFamilies([...requests.families(), ...((await deps.metrics?.families(auth)) ?? [])]);
    return c.body(text, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
  });
  return r;
}
