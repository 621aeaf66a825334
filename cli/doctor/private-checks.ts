// `pier doctor` on a swarm: what its private networks do not do, said where an operator looks
// (docs/guide-connect-privately.md, "On several machines"). On one engine there is nothing to say.
import type { RuntimeSetting } from '../../api/config.js';
import { SWARM_PRIVATE_WARNING } from '../../api/scheduler/swarm-private.js';
import type { CheckResult } from './host-checks.js';

export function checkPrivateNetworks(runtime: RuntimeSetting): CheckResult[] {
  if (runtime.kind !== 'swarm') return [];
  return [
    {
      name: 'private networks',
      status: 'warn',
      message: SWARM_PRIVATE_WARNING,
      fix: 'run `pier agent --docker-host unix:///var/run/docker.sock` (as root) on every node, and list each agent with --node-agent: offered ports are then enforced in every task; IPv6 and names that follow Pier\'s checks need a single-engine Pier',
    },
  ];
}
