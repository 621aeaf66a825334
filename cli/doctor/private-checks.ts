// `pier doctor` on a swarm: what its private networks do not do, and where offered ports are
// enforced (asking each configured node agent, as `pier describe app` does), said where an
// operator looks (docs/guide-connect-privately.md, "On several machines"). On one engine there is
// nothing to say.
import type { RuntimeSetting } from '../../api/config.js';
import { SWARM_PRIVATE_BASE, swarmOfferedPorts } from '../../api/scheduler/swarm-private.js';
import type { CheckResult } from './host-checks.js';

type AgentPorts = Parameters<typeof swarmOfferedPorts>[0];

const AGENT_FIX = 'run `pier agent --docker-host unix:///var/run/docker.sock` (as root) on every node, and list each agent with --node-agent (PIER_NODE_AGENTS)';

/** `agents`: what each configured node agent says (empty: none configured). */
export function checkPrivateNetworks(runtime: RuntimeSetting, agents: AgentPorts = {}): CheckResult[] {
  if (runtime.kind !== 'swarm') return [];
  const states = Object.values(agents);
  const all = states.length > 0 && states.every((s) => s !== null && s !== 'unreachable' && s.problem === null);
  return [
    {
      name: 'private networks',
      status: 'warn',
      message: SWARM_PRIVATE_BASE,
      fix: 'accept it (resolve names with getaddrinfo, as most clients do, and run the agents with --docker-host), or run the apps that need DNS answers that follow Pier\'s checks on a single-engine Pier',
    },
    {
      name: 'offered ports',
      status: all ? 'ok' : 'warn',
      message: states.length ? swarmOfferedPorts(agents) : 'offered ports ([[private]] ports) are not enforced, and tasks have no IPv6 address: no node agent is configured (--node-agent), so every port of a task is open to its environment\'s network',
      fix: AGENT_FIX,
    },
  ];
}
