// Addresses as resources (`pier ips`): list the shared and dedicated addresses, allocate a
// dedicated one to an app, describe one, release one. The rules live in api/ip-service.ts.
import { Hono } from 'hono';
import { z } from 'zod';
import { IP_FAMILIES } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { parseBody, parseQuery, readJson } from '../request.js';
import { ipViewSchema } from '../view-schemas.js';

const listQuery = z.object({
  family: z.enum(IP_FAMILIES).optional().describe('only this family'),
  shared: z.enum(['true', 'false']).optional().describe('true: only the shared addresses; false: only dedicated ones'),
  app: z.string().max(40).optional().describe("only this app's dedicated addresses"),
});

const allocateBody = z.object({
  app: z.string().min(1).max(40),
  family: z.enum(IP_FAMILIES),
});

const usesSchema = z.array(z.object({ app: z.string(), port: z.number() })).describe('endpoints that bind it');

describeRoute({
  method: 'get',
  path: '/v1/ips',
  scope: 'read',
  summary: "The edge's shared addresses and the dedicated addresses of the org's apps (an app-bound token sees its app's)",
  query: listQuery,
  response: z.object({
    ips: z.array(ipViewSchema),
    pools: z
      .array(z.object({ cidr: z.string(), family: z.enum(IP_FAMILIES), size: z.string(), allocated: z.number(), bindProblem: z.string().nullable() }))
      .describe("the server's pools: usable addresses (decimal string), how many are allocated, and why the local edge cannot bind them (start-up check) or null"),
  }),
  errors: [404],
});
describeRoute({
  method: 'post',
  path: '/v1/ips',
  scope: 'deploy',
  summary: "Allocate a dedicated address of a family to an app from the server's pools; its endpoints bind it from its next deploy",
  description:
    'One address per family and app: when the app has one already, it is answered with 200 and `created: false`. 409 E_POOL_EXHAUSTED when every address of the pools is allocated or cooling down; 409 E_NO_IP_POOL when the server has no pool of that family.',
  body: allocateBody,
  response: z.object({ ip: ipViewSchema, created: z.boolean() }),
  status: [201, 200],
  errors: [404, 409],
});
describeRoute({ method: 'get', path: '/v1/ips/:address', scope: 'read', summary: 'One address: owner, state, pool, cool-down, and the endpoints that bind it', response: z.object({ ip: ipViewSchema.extend({ endpoints: usesSchema }) }), errors: [404] });
describeRoute({
  method: 'delete',
  path: '/v1/ips/:address',
  scope: 'deploy',
  summary: 'Release a dedicated address; it cools down before another app gets it',
  description: '409 E_IP_IN_USE while an endpoint binds it (deploy the app with that family "shared" or "none" first); 404 E_IP_NOT_FOUND when no app of this token holds it.',
  response: z.object({ ip: ipViewSchema }),
  errors: [404, 409],
});

export function ipRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();
  const ips = deps.ips;
  if (!ips) return r;

  r.get('/ips', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const q = parseQuery(listQuery, c.req.query());
    const list = await ips.list(auth, { family: q.family, app: q.app, shared: q.shared === undefined ? undefined : q.shared === 'true' });
    return c.json({ ips: list, pools: await ips.pools() });
  });

  r.post('/ips', async (c) => {
    const body = parseBody(allocateBody, await readJson(c.req));
    const result = await ips.allocate(c.get('auth'), body.app, body.family);
    return c.json(result, result.created ? 201 : 200);
  });

  r.get('/ips/:address', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    return c.json({ ip: await ips.describe(auth, c.req.param('address')) });
  });

  r.delete('/ips/:address', async (c) => {
    return c.json({ ip: await ips.release(c.get('auth'), c.req.param('address')) });
  });

  return r;
}
