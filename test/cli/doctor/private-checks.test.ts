// `pier doctor` says on a swarm what its private networks do not do; on one engine it says nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPrivateNetworks } from '../../../cli/doctor/private-checks.js';

test('on a swarm, a warning: IPv4-only overlays, offered ports not enforced; on one engine, no check', () => {
  const [check, ...rest] = checkPrivateNetworks({ kind: 'swarm', nodeEngines: {} });
  assert.equal(rest.length, 0);
  assert.equal(check?.status, 'warn');
  assert.match(check?.message ?? '', /IPv4-only overlays/);
  assert.match(check?.message ?? '', /not enforced/);
  assert.ok(check?.fix);
  assert.deepEqual(checkPrivateNetworks({ kind: 'docker' }), []);
});
