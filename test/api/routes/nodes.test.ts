// `GET /v1/nodes` on a single engine: the one node "local" with its address and the instances
// that run there; drain and activate say there is no other node (E_NOT_A_SWARM); an unknown node
// is E_NODE_NOT_FOUND; draining needs an org-wide admin token. (On a swarm:
// test/api/runtime/swarm-services.test.ts.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instances, nodes, releases } from '../../../db/schema/index.js';
import type { ErrorBody, NodeView } from '../../../api/views.js';
import { createApp, createOrg, createTestApi, createToken } from '../../support/test-api.js';

async function json<T>(res: Response, status: number): Promise<T> {
  const body = (await res.json()) as T;
  assert.equal(res.status, status, JSON.stringify(body));
  return body;
}

test('nodes on a single engine: the local node with its address and running instances; no drain; errors with codes', async (t) => {
  const api = await createTestApi(t);
  const orgId = await createOrg(api.db, 'acme');
  const appId = await createApp(api.db, orgId, 'web');
  await api.db.insert(nodes).values({ id: 'node_local', name: 'local', endpoint: 'unix:///var/run/docker.sock' });
  await api.db.insert(releases).values({ id: 'rel_1', appId, version: 1, manifest: {}, image: 'x', imageId: 'sha256:1', imageDigest: 'sha256:1', configHash: 'h' });
  await api.db.insert(instances).values([
    { id: 'web-web-1', appId, releaseId: 'rel_1', process: 'web', nodeId: 'node_local', desiredState: 'running', observedState: 'running' },
    { id: 'web-web-2', appId, releaseId: 'rel_1', process: 'web', nodeId: 'node_local', desiredState: 'stopped', observedState: 'exited' },
  ]);
  const reader = await createToken(api.db, orgId, { scope: 'read' });
  const admin = await createToken(api.db, orgId, { scope: 'admin' });
  const appAdmin = await createToken(api.db, orgId, { scope: 'admin', appId });

  const { nodes: list } = await json<{ nodes: NodeView[] }>(await api.request('/v1/nodes', { token: reader }), 200);
  assert.deepEqual(list, [
    { id: 'node_local', name: 'local', address: '127.0.0.1', state: 'ready', availability: 'active', role: 'engine', labels: {}, capacity: null, engineVersion: null, instances: 1 },
  ]);
  for (const ref of ['node_local', 'local', '127.0.0.1']) {
    assert.equal((await json<{ node: NodeView }>(await api.request(`/v1/nodes/${ref}`, { token: reader }), 200)).node.id, 'node_local');
  }
  const missing = await json<ErrorBody>(await api.request('/v1/nodes/10.9.9.9', { token: reader }), 404);
  assert.equal(missing.error.code, 'E_NODE_NOT_FOUND');
  assert.match(missing.error.hint ?? '', /127\.0\.0\.1/);

  const drain = await json<ErrorBody>(await api.request('/v1/nodes/local/drain', { token: admin, method: 'POST' }), 409);
  assert.equal(drain.error.code, 'E_NOT_A_SWARM');
  assert.match(drain.error.hint ?? '', /several-machines/);
  assert.equal((await json<ErrorBody>(await api.request('/v1/nodes/local/activate', { token: reader, method: 'POST' }), 403)).error.code, 'E_FORBIDDEN');
  assert.equal((await json<ErrorBody>(await api.request('/v1/nodes/local/drain', { token: appAdmin, method: 'POST' }), 403)).error.code, 'E_FORBIDDEN');
});
