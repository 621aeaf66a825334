// `pier doctor` says on a swarm what its private networks do not do; on one engine it says nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPrivateNetworks } from '../../../cli/doctor/private-checks.js';

test('on a swarm, a warning: IPv4-only overlays, offered ports enforced only where an agent watches its node\'s engine; on one engine, no check', () => {
  const [check, ...rest] = checkPrivateNetworks({ kind: 'swarm', nodeEngines: {} });
  assert.equal(rest.length, 0);
  assert.equal(check?.status, 'warn');
  assert.match(check?.message ?? '', /IPv4-only overlays/);
  assert.match(check?.message ?? '', /enforced only in the tasks of nodes whose `pier agent` runs with --docker-host/);
  assert.match(check?.fix ?? '', /pier agent --docker-host unix:\/\/\/var\/run\/docker\.sock/);
  assert.deepEqual(checkPrivateNetworks({ kind: 'docker' }), []);
});
