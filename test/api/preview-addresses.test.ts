// Previews on addresses of their own (issue 17 with issue 16's pools): with an IPv6 pool a preview
// app gets its own IPv6 and keeps the manifest's port on it, while on the shared IPv4 its port
// comes from the preview range; the deploy's answer says which address, port and family; the
// address is released (cooling down) when the preview is destroyed. Control plane with the
// in-memory runtime and the real database (PGlite, or PostgreSQL with DATABASE_URL).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { ipAddresses } from '../../db/schema/index.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

const env = (name: string) => ({ 'pier-env': name });

interface Bind {
  address: string;
  port: number;
  family: 'ipv4' | 'ipv6';
  kind: 'shared' | 'dedicated';
}
interface DeployAnswer {
  release: { version: number };
  endpoints: { port: number; manifestPort: number; addresses: string[]; bind: Bind[] }[];
}

test("a preview keeps production's port on its own IPv6 and gets a range port on the shared IPv4; destroying it releases the address", async (t) => {
  const cp = await createControlPlane(t, { ipPools: ['fd00:77::/126'] });
  const manifest = echoManifest('web', { count: 0, port: 9000 });
  assert.equal((await cp.request('/v1/deploys', { body: { manifest } })).status, 201);
  const res = await cp.request('/v1/deploys', { body: { manifest, environment: { ttl: '2h' } }, headers: env('pr-42') });
  assert.equal(res.status, 201, await res.clone().text());
  const view = (await res.json()) as DeployAnswer;

  const [own] = await cp.db.select().from(ipAddresses).where(eq(ipAddresses.address, 'fd00:77::2'));
  assert.ok(own?.appId, 'the preview app got the second IPv6 of the pool (production has the first)');
  const all = view.endpoints.flatMap((e) => e.bind.map((b) => ({ ...b, manifestPort: e.manifestPort })));
  const v6 = all.filter((b) => b.family === 'ipv6');
  const v4 = all.filter((b) => b.family === 'ipv4');
  assert.deepEqual(v6, [{ address: 'fd00:77::2', port: 9000, family: 'ipv6', kind: 'dedicated', manifestPort: 9000 }]);
  assert.equal(v4.length, 1);
  assert.equal(v4[0]?.address, '127.0.0.1');
  assert.equal(v4[0]?.kind, 'shared');
  assert.equal(v4[0]?.manifestPort, 9000);
  assert.ok(v4[0]!.port >= 20000 && v4[0]!.port <= 29999, `shared port ${v4[0]?.port} from the range`);
  assert.deepEqual(view.endpoints.map((e) => e.addresses).flat().sort(), [`127.0.0.1:${v4[0]?.port}`, '[fd00:77::2]:9000']);

  // What the edge serves: production on the shared IPv4 and its IPv6 at 9000, the preview at 9000
  // on its own IPv6 and at the range port on the shared IPv4; no two on one address:port.
  const snapshot = await cp.edgeFeed.rebuild();
  const listeners = snapshot.endpoints.flatMap((e) => e.bind.map((b) => `${b.address} ${b.port}`)).sort();
  assert.deepEqual(listeners, [`127.0.0.1 ${v4[0]?.port}`, '127.0.0.1 9000', 'fd00:77::1 9000', 'fd00:77::2 9000'].sort());

  // Deploying again is the same release, the same ports.
  const again = await cp.request('/v1/deploys', { body: { manifest }, headers: env('pr-42') });
  assert.equal(again.status, 200);
  const changed = (await (await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 0, port: 9000, env: { V: '2' } }) }, headers: env('pr-42') })).json()) as DeployAnswer;
  assert.equal(changed.release.version, 2);
  assert.deepEqual(changed.endpoints.flatMap((e) => e.bind).sort((a, b) => a.port - b.port), [...v4, ...v6].map(({ manifestPort: _, ...b }) => b).sort((a, b) => a.port - b.port));

  // Parity: the preview's endpoint 9000 differs from production's only by its range port, declared.
  const diff = (await (await cp.request('/v1/environments/pr-42/diff/production')).json()) as { differences: { field: string; a: unknown; kind: string }[] };
  assert.deepEqual(diff.differences.filter((d) => d.field.startsWith('endpoint.')).map((d) => [d.field, d.a, d.kind]), [['endpoint.9000', v4[0]?.port, 'declared']]);

  // Destroyed: its address is released and cools down like any deleted app's.
  const gone = await cp.request('/v1/environments/pr-42?wait=0', { method: 'DELETE' });
  assert.equal(gone.status, 200, await gone.clone().text());
  const [after] = await cp.db.select().from(ipAddresses).where(eq(ipAddresses.address, 'fd00:77::2'));
  assert.equal(after?.appId, null);
  assert.ok(after?.reusableAt && after.reusableAt.getTime() > Date.now(), 'it cools down before another app gets it');
  const edge = await cp.edgeFeed.rebuild();
  assert.deepEqual(edge.endpoints.flatMap((e) => e.bind.map((b) => `${b.address} ${b.port}`)).sort(), ['127.0.0.1 9000', 'fd00:77::1 9000']);
});

test('without an address of its own (no pool), a preview endpoint is served only on a range port, as before', async (t) => {
  const cp = await createControlPlane(t);
  const res = await cp.request('/v1/deploys', { body: { manifest: echoManifest('web', { count: 0, port: 9000 }) }, headers: env('pr-1') });
  assert.equal(res.status, 201, await res.clone().text());
  const view = (await res.json()) as DeployAnswer;
  assert.equal(view.endpoints.length, 1);
  const port = view.endpoints[0]!.port;
  assert.ok(port >= 20000 && port <= 29999);
  assert.deepEqual(view.endpoints[0]?.bind, [{ address: '127.0.0.1', port, family: 'ipv4', kind: 'shared' }]);
});
