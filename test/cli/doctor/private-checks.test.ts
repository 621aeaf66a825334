// `pier doctor` says on a swarm what its private networks do not do, and where offered ports are
// enforced as the node agents say; on one engine it says nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPrivateNetworks } from '../../../cli/doctor/private-checks.js';

test('on a swarm: a warning for Swarm\'s A-only DNS; offered ports ok only when every configured agent enforces them; on one engine, no check', () => {
  const swarm = { kind: 'swarm' as const, nodeEngines: {} };
  const [net, ports, ...rest] = checkPrivateNetworks(swarm);
  assert.equal(rest.length, 0);
  assert.equal(net?.status, 'warn');
  assert.match(net?.message ?? '', /Swarm's DNS answers the names with A records of running tasks only; the AAAA and A records of ready instances/);
  assert.equal(ports?.status, 'warn');
  assert.match(ports?.message ?? '', /not enforced, and tasks have no IPv6 address: no node agent is configured/);
  assert.match(ports?.fix ?? '', /pier agent --docker-host unix:\/\/\/var\/run\/docker\.sock/);

  const enforced = checkPrivateNetworks(swarm, { '10.0.0.1': { enforced: 2, problem: null }, '10.0.0.2': { enforced: 0, problem: null } })[1];
  assert.equal(enforced?.status, 'ok');
  assert.match(enforced?.message ?? '', /enforced, and IPv6 addresses given, in the tasks on 10\.0\.0\.1, 10\.0\.0\.2/);

  const partly = checkPrivateNetworks(swarm, { '10.0.0.1': { enforced: 2, problem: null }, '10.0.0.2': null, '10.0.0.3': 'unreachable' })[1];
  assert.equal(partly?.status, 'warn');
  assert.match(partly?.message ?? '', /not on 10\.0\.0\.2 \(its agent runs without --docker-host\), 10\.0\.0\.3 \(its agent does not answer\)/);
  const failing = checkPrivateNetworks(swarm, { '10.0.0.1': { enforced: 1, problem: 'container abc: iptables-restore exited with 1' } })[1];
  assert.equal(failing?.status, 'warn', 'a failure to write a chain is a warning');

  assert.deepEqual(checkPrivateNetworks({ kind: 'docker' }), []);
});
