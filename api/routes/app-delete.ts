// DELETE /v1/apps/:app: deletes an app (api/app-deleter.ts) and waits, up to `wait` seconds, until
// its containers are gone: 200 when they are, 202 when some remain (the reconciler goes on).
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { type ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { parseQuery } from '../request.js';
import { appDeletedViewSchema } from '../view-schemas.js';
import { appView, type AppDeletedView } from '../views.js';

const deleteQuery = z.object({
  wait: z.coerce.number().int().min(0).max(300).default(60).describe('seconds to wait for the containers to be gone (0: do not wait)'),
});

describeRoute({
  method: 'delete',
  path: '/v1/apps/:app',
  scope: 'deploy',
  summary: "Delete an app: its instances stop and their containers are removed, its endpoints go (their ports are free at once), its app-bound tokens are revoked; its events stay readable",
  description:
    'One transaction writes the change and an `app.deleted` event (a running deployment becomes `cancelled`); the reconciler then removes the containers. 200 once they are gone, 202 when `wait` ran out first. The app stays as a tombstone: `GET /v1/apps?deleted=true` lists them, `GET /v1/apps/{id}/events` (or `?deleted=true` with the name) reads its events.',
  query: deleteQuery,
  response: appDeletedViewSchema,
  status: [200, 202],
  errors: [404],
});

export function appDeleteRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.delete('/apps/:app', async (c) => {
    const q = parseQuery(deleteQuery, c.req.query());
    const result = await deps.deleter.delete(c.get('auth'), c.req.param('app'), q.wait * 1000, c.req.raw.signal);
    const view: AppDeletedView = {
      app: appView(result.app, null),
      instances: result.instances,
      ports: result.ports,
      addresses: result.addresses,
      tokensRevoked: result.tokensRevoked,
      deploymentsCancelled: result.deploymentsCancelled,
      containersRemaining: result.containersRemaining,
    };
    return c.json(view, result.containersRemaining === 0 ? 200 : 202);
  });

  return r;
}
