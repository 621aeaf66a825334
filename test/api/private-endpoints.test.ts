// Private endpoints (access = "private"): kept as endpoint rows, but never in the edge's snapshot,
// claiming no public port (another app may serve that port publicly), shown as private by the
// status route, and refused with options that only a bound endpoint has.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpoints, portClaims } from '../../db/schema/index.js';
import { parseManifest, type ManifestProblem } from '../../api/manifest.js';
import { PierError } from '../../api/pier-error.js';
import type { StatusView } from '../../api/views.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

const privateEcho = (app: string, port: number) => echoManifest(app, { count: 1, port }).replace('target = 8080', 'target = 8080\naccess = "private"');

test('a private endpoint is left out of the edge snapshot, claims no port, and reads as private', async (t) => {
  const cp = await createControlPlane(t);
  const admin = await cp.deploy(privateEcho('admin-tool', 9901));
  // The same port, public, for another app: a private endpoint holds no public port.
  const web = await cp.deploy(echoManifest('web', { count: 1, port: 9901 }));
  await cp.converge(admin.app.id, async () => (await cp.pass(admin.app.id))?.changed === false, 'admin-tool running');
  const snapshot = await cp.edgeFeed.rebuild();
  assert.deepEqual(snapshot.endpoints.map((e) => e.name), ['web/9901']);
  const rows = await cp.db.select().from(endpoints);
  assert.deepEqual(rows.map((r) => [r.appId === admin.app.id ? 'admin-tool' : 'web', r.access]).sort(), [['admin-tool', 'private'], ['web', 'public']]);
  const claims = await cp.db.select().from(portClaims);
  assert.deepEqual([...new Set(claims.map((c) => c.appId))], [web.app.id]);

  const res = await cp.request('/v1/apps/admin-tool');
  assert.equal(res.status, 200);
  const status = (await res.json()) as StatusView;
  assert.equal(status.endpoints[0]?.access, 'private');
  assert.deepEqual(status.endpoints[0]?.addresses, []);
  assert.equal(status.endpoints[0]?.served.state, 'private');

  // Made public, it enters the snapshot (and now clashes with nobody: web moves off first).
  await cp.deploy(echoManifest('web', { count: 1, port: 9902 }));
  await cp.deploy(echoManifest('admin-tool', { count: 1, port: 9901 }));
  const after = await cp.edgeFeed.rebuild();
  assert.deepEqual(after.endpoints.map((e) => e.name).sort(), ['admin-tool/9901', 'web/9902']);
});

test('a private endpoint refuses settings only a bound endpoint has', () => {
  assert.equal(parseManifest(privateEcho('a', 9000)).endpoints[0]?.access, 'private');
  for (const extra of ['ipv4 = "dedicated"', 'allow = ["10.0.0.0/8"]', 'tls = "passthrough"\nsni_default = true']) {
    const problems = problemsOf(privateEcho('a', 9000).replace('access = "private"', `access = "private"\n${extra}`));
    assert.ok(problems.some((p) => /private endpoint/.test(p.message)), `${extra}: ${JSON.stringify(problems)}`);
  }
  const bad = problemsOf(privateEcho('a', 9000).replace('"private"', '"hidden"'));
  assert.ok(bad.some((p) => p.path === 'endpoints[0].access'), JSON.stringify(bad));
});

function problemsOf(toml: string): ManifestProblem[] {
  try {
    parseManifest(toml);
  } catch (err) {
    assert.ok(err instanceof PierError && err.code === 'E_MANIFEST_INVALID', String(err));
    return err.details as ManifestProblem[];
  }
  assert.fail('the manifest was accepted');
}
