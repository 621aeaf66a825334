// A rollback checks that the old release's image is still on the engine. Found by the soak
// (npm run soak): with the engine down, that check answered 422 E_IMAGE_NOT_FOUND ("no longer on
// this machine"), telling the user to rebuild an image that was there all along. An engine that
// does not answer is E_RUNTIME_UNAVAILABLE (503, retry), and the rollback changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { releases } from '../../db/schema/index.js';
import { isPierError } from '../../api/pier-error.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

test('a rollback while the engine is down is 503 E_RUNTIME_UNAVAILABLE and makes no release; once it is back the rollback runs', async (t) => {
  const cp = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('back', { env: { REV: '1' } }));
  await cp.deploy(echoManifest('back', { env: { REV: '2' } }));
  const count = async () => (await cp.db.select().from(releases).where(eq(releases.appId, v1.app.id))).length;
  assert.equal(await count(), 2);

  cp.runtime.setAvailable(false);
  const refused = await cp.deploys.rollback(cp.auth, 'back', 1).then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(isPierError(refused), `expected a PierError, got ${String(refused)}`);
  assert.equal(refused.code, 'E_RUNTIME_UNAVAILABLE', refused.message);
  assert.equal(refused.status, 503);
  assert.equal(await count(), 2, 'no release was made');

  cp.runtime.setAvailable(true);
  const rolled = await cp.deploys.rollback(cp.auth, 'back', 1);
  assert.equal(rolled.release.version, 3);
  assert.equal(rolled.release.rollbackOf, 1);
});

test('a rollback to a release whose image is gone from the engine is still 422 E_IMAGE_NOT_FOUND', async (t) => {
  const cp = await createControlPlane(t);
  const v1 = await cp.deploy(echoManifest('gone', { env: { REV: '1' } }));
  await cp.deploy(echoManifest('gone', { env: { REV: '2' } }));
  // As if the image had been removed from the engine since: v1's image id is one it does not have.
  await cp.db.update(releases).set({ imageId: `sha256:${'0'.repeat(64)}`, imageDigest: `sha256:${'0'.repeat(64)}` }).where(eq(releases.id, v1.release.id));
  const refused = await cp.deploys.rollback(cp.auth, 'gone', 1).then(
    () => null,
    (err: unknown) => err,
  );
  assert.ok(isPierError(refused), `expected a PierError, got ${String(refused)}`);
  assert.equal(refused.code, 'E_IMAGE_NOT_FOUND', refused.message);
  assert.match(refused.message, /no longer on this machine/);
  assert.equal(refused.status, 422);
});
