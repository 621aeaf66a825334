// GET /openapi.json: the OpenAPI 3.1 document of this API, with no authentication (it holds no
// data). /healthz is defined in api/app.ts and documented here.
import { createRequire } from 'node:module';
import { Hono } from 'hono';
import { z } from 'zod';
import { describeRoute, openApiDocument } from '../openapi.js';

const { version } = createRequire(import.meta.url)('../../../package.json') as { version: string };

describeRoute({
  method: 'get',
  path: '/healthz',
  scope: null,
  summary: 'Readiness and dependencies: 200 once the server started (status "up", or "degraded" while the database or Docker does not answer), 503 E_NOT_READY before',
  description: 'Each dependency is probed at most once every 2 s, and a probe gives up after 1.5 s, so this route is cheap to poll.',
  response: z.object({
    ok: z.literal(true),
    status: z.enum(['up', 'degraded']),
    dependencies: z.record(
      z.string(),
      z.object({ status: z.enum(['up', 'down']), checkedAt: z.string(), latencyMs: z.number(), error: z.string().optional().describe('why it is down') }),
    ),
  }),
  errors: [503],
});

describeRoute({
  method: 'get',
  path: '/openapi.json',
  scope: null,
  summary: 'This document',
  response: { type: 'object', description: 'An OpenAPI 3.1 document' },
});

export function openApiRoutes() {
  const r = new Hono();
  let document: Record<string, unknown> | null = null;
  r.get('/openapi.json', (c) => c.json((document ??= openApiDocument(version))));
  return r;
}
