// Parity and promote through the HTTP API on a real database and the in-memory runtime: declared
// differences ([env.staging]) are not drift, a `pier scale` in one environment is, promote is
// refused on drift unless allowed and gives production staging's exact digest.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createControlPlane, echoManifest, IMAGE } from '../support/memory-control-plane.js';

const staging = { 'pier-env': 'staging' };
const withOverride = (image: string) => `${echoManifest('web', { count: 2 }).replace(`image = "${IMAGE}"`, `image = "${image}"`)}\n[env.staging]\nLOG_LEVEL = "debug"\nports = { "9000" = 19000 }\n[env.staging.processes.web]\ncount = 1\n`;

interface Diff {
  drift: boolean;
  differences: { field: string; kind: string }[];
}

test('env diff marks declared differences and drift; promote is refused on drift, then gives production the exact digest of staging', async (t) => {
  const cp = await createControlPlane(t);
  const v2 = cp.runtime.addImage('pier-test/busybox:2');
  // Production on image 1, staging on image 2: the digest differs (that is what promote is for).
  assert.equal((await cp.request('/v1/deploys', { body: { manifest: withOverride(IMAGE) } })).status, 201);
  const st = await cp.request('/v1/deploys', { body: { manifest: withOverride('pier-test/busybox:2') }, headers: staging });
  assert.equal(st.status, 201, await st.clone().text());

  const first = (await (await cp.request('/v1/environments/staging/diff/production')).json()) as Diff;
  const kinds = Object.fromEntries(first.differences.map((d) => [d.field, d.kind]));
  assert.equal(kinds['count.web'], 'declared');
  assert.equal(kinds['env.LOG_LEVEL'], 'declared');
  assert.equal(kinds['endpoint.9000'], 'declared');
  assert.equal(kinds.digest, 'drift');
  assert.equal(Object.keys(kinds).filter((k) => kinds[k] === 'drift').join(','), 'digest');

  // Injected drift: a scale in staging that no override declares.
  assert.equal((await cp.request('/v1/apps/web/scale', { body: { counts: { web: 3 } }, headers: staging })).status, 200);
  const drifted = (await (await cp.request('/v1/environments/staging/diff/production')).json()) as Diff;
  assert.equal(drifted.drift, true);
  assert.equal(drifted.differences.find((d) => d.field === 'count.web')?.kind, 'drift');

  const refused = await cp.request('/v1/promote', { body: { from: 'staging', to: 'production' } });
  assert.equal(refused.status, 409);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'E_DRIFT');
  const prodBefore = (await (await cp.request('/v1/apps/web')).json()) as { release: { version: number; imageDigest: string } };
  assert.equal(prodBefore.release.version, 1, 'a refused promote changes nothing');

  const promoted = await cp.request('/v1/promote', { body: { from: 'staging', to: 'production', allowDrift: true } });
  assert.equal(promoted.status, 201, await promoted.clone().text());
  const after = (await (await cp.request('/v1/apps/web')).json()) as { release: { version: number; imageDigest: string } };
  assert.equal(after.release.version, 2);
  assert.equal(after.release.imageDigest, v2.repoDigest ?? v2.id);
  // Production keeps its own declared counts: staging's override is not applied there.
  const diff = (await (await cp.request('/v1/environments/staging/diff/production')).json()) as Diff;
  assert.equal(diff.differences.find((d) => d.field === 'digest'), undefined);
});
