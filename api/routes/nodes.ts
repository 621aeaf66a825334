// The nodes instances run on: list and describe them (read), drain and activate one (org-wide
// admin token: it moves every org's instances). Answered by the server's node directory: the one
// engine, or the swarm's nodes (api/node-directory.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv, type AuthContext } from '../auth.js';
import { createLocalNodeDirectory } from '../node-directory.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { nodeViewSchema } from '../view-schemas.js';

describeRoute({ method: 'get', path: '/v1/nodes', scope: 'read', summary: 'The nodes instances run on, with address, state, availability, labels, capacity and instance count', response: z.object({ nodes: z.array(nodeViewSchema) }) });
describeRoute({ method: 'get', path: '/v1/nodes/:node', scope: 'read', summary: 'One node, by id, name or address', response: z.object({ node: nodeViewSchema }), errors: [404] });
describeRoute({
  method: 'post',
  path: '/v1/nodes/:node/drain',
  scope: 'admin',
  summary: 'Drain a swarm node: Swarm moves its instances to other nodes and places none there (org-wide admin token)',
  description: 'On a single engine this is 409 E_NOT_A_SWARM. Each instance that moves is an `instance.moved` event with reason `node-drained`.',
  response: z.object({ node: nodeViewSchema }),
  errors: [404, 409],
});
describeRoute({ method: 'post', path: '/v1/nodes/:node/activate', scope: 'admin', summary: 'Make a drained swarm node active again: Swarm may place instances there (org-wide admin token)', response: z.object({ node: nodeViewSchema }), errors: [404, 409] });

function operator(auth: AuthContext): void {
  requireScope(auth, 'admin');
  if (auth.appId !== null) {
    throw new PierError('E_FORBIDDEN', 'a token bound to an app cannot drain or activate nodes: they run every app', { status: 403, hint: 'use an org-wide admin token' });
  }
}

export function nodeRoutes(deps: ApiDeps) {
  const directory = deps.nodes ?? createLocalNodeDirectory(deps.db);
  const r = new Hono<ApiEnv>();
  r.get('/nodes', async (c) => {
    requireScope(c.get('auth'), 'read');
    return c.json({ nodes: await directory.list() });
  });
  r.get('/nodes/:node', async (c) => {
    requireScope(c.get('auth'), 'read');
    return c.json({ node: await directory.get(c.req.param('node')) });
  });
  for (const action of ['drain', 'activate'] as const) {
    r.post(`/nodes/:node/${action}`, async (c) => {
      operator(c.get('auth'));
      const node = await directory.setAvailability(c.req.param('node'), action === 'drain' ? 'drain' : 'active');
      deps.log.info({ node: node.id, address: node.address, availability: node.availability }, `node ${action === 'drain' ? 'drained' : 'activated'}`);
      return c.json({ node });
    });
  }
  return r;
}
