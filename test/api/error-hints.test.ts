// Errors about one app give a hint that names it: a user can paste the hint as it is (the server
// used to print a literal `--app APP`).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPierError } from '../../api/pier-error.js';
import { createControlPlane, echoManifest } from '../support/memory-control-plane.js';

async function refusal(what: Promise<unknown>): Promise<{ code: string; hint: string }> {
  try {
    await what;
  } catch (err) {
    assert.ok(isPierError(err), `a PierError, got ${String(err)}`);
    return { code: err.code, hint: String(err.hint ?? '') };
  }
  assert.fail('expected a refusal');
}

test('a rollback to a missing version, or with no earlier good release, hints with the app name', async (t) => {
  const cp = await createControlPlane(t);
  await cp.deploy(echoManifest('hinted', { port: 19417 }));
  const missing = await refusal(cp.deploys.rollback(cp.auth, 'hinted', 9));
  assert.equal(missing.code, 'E_RELEASE_NOT_FOUND');
  assert.match(missing.hint, /pier releases --app hinted/);
  const none = await refusal(cp.deploys.rollback(cp.auth, 'hinted'));
  assert.equal(none.code, 'E_NO_ROLLBACK_TARGET');
  assert.match(none.hint, /pier rollback VERSION --app hinted/);
  for (const hint of [missing.hint, none.hint]) assert.doesNotMatch(hint, /\bAPP\b/);
});
