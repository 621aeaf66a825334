// Which private network a swarm service joins and the names its tasks answer there. On a swarm a
// task's names come from its service's spec (TaskTemplate.Networks[].Aliases) and Swarm's DNS
// answers them with the service's running tasks, on every node of the overlay. So the names are
// given per service, when it is made, and never moved afterwards: changing a service's networks
// or aliases replaces all of its tasks (measured: `docker service update --network-add` restarted
// both tasks), which a rollout cannot afford.
//
// Those are Swarm's DNS answers (A records only). The names that follow Pier's checks, with AAAA,
// go into each task's hosts file instead (swarm-names.ts, written by the node agents).
// What follows for Swarm's answers (docs/guide-connect-privately.md, "On several machines"):
// - a new release's task answers the names once Swarm has it running, before Pier's own check
//   passes (Swarm lists running tasks only; a Docker HEALTHCHECK would hold it back, but Swarm
//   kills a task whose HEALTHCHECK fails, so it cannot take a task out of the name either);
// - a draining task keeps answering until its service is scaled down or removed at the drain's
//   end: Swarm takes a task out of the name as soon as it is asked to stop, before SIGTERM
//   (measured: gone from the answer within a second, while the task ran its 10 s grace period).
import type { Logger } from 'pino';
import type { Manifest } from '../manifest.js';
import { isPierError } from '../pier-error.js';
import { effectiveCheck } from './readiness-check.js';
import { offerLabels } from '../agent/task-firewall.js';
import { privateNames, privateOffer, privatePorts } from '../private/private-spec.js';
import { swarmOverlayName } from '../runtime/swarm-overlays.js';
import type { SwarmGroupSpec } from '../runtime/swarm-service-spec.js';

export interface SwarmAttachment {
  name: string;
  aliases: string[];
  /** The overlay's IPv4 subnet (what the node agents enforce offered ports against). */
  subnet: string;
  /** The environment's IPv6 /64: the node agents give each task PREFIX::IPv4 on the overlay. */
  ipv6Subnet: string | null;
}

/**
 * What a task on the overlay is told (as private-env.ts tells an instance on one engine): the
 * family to use there is IPv4, and the names its group answers to.
 */
export function swarmPrivateEnv(app: string, manifest: Manifest, process: string): Record<string, string> {
  const names = swarmPrivateAliases(app, manifest, process);
  return { PIER_PRIVATE_FAMILY: 'ipv4', ...(names.length ? { PIER_PRIVATE_NAMES: names.join(' ') } : {}) };
}

/**
 * The health a new task's row starts with. Pier's checks reach a task at its node's address and a
 * published port, and a port offered only in [[private]] is not published (that would open it on
 * every node's addresses): the overlay is not reachable from the API server. So the implicit
 * readiness check, which would connect to that port, cannot run there: such a group's tasks count
 * as ready once running ('none'), as Swarm's DNS already does. An explicit check (tcp/http on a
 * published port, or exec) is kept.
 */
export function swarmInitialHealth(manifest: Manifest, process: string): 'starting' | 'none' {
  const check = effectiveCheck(manifest, process);
  if (!check) return 'none';
  if (check.type === 'listen' && check.targets.some((t) => t.endpoints.length === 0)) return 'none';
  return 'starting';
}

/** The names a group's tasks answer on its private network: its group's and app's when it offers ports, else none. Pure. */
export function swarmPrivateAliases(app: string, manifest: Manifest, process: string): string[] {
  return privateOffer(manifest, process) ? privateNames(app, process) : [];
}

export interface SwarmPrivateOptions {
  /** The environment's private network, made (an overlay) when missing: private-networks.ts. */
  networkFor: (app: { orgId: string; environment?: string | undefined }) => Promise<{ name: string; ipv4Subnet: string; ipv6Subnet?: string | null | undefined }>;
  log: Logger;
}

/**
 * The networks of a new service. A group that offers ports cannot be made without its network
 * (its names could not be added later without replacing its tasks): the error is thrown, and the
 * reconciler tries again. Any other group starts without it, as on one engine.
 */
export function createSwarmPrivate(options: SwarmPrivateOptions) {
  return {
    async attachments(app: { name: string; orgId: string; environment?: string | undefined }, manifest: Manifest, process: string): Promise<SwarmAttachment[]> {
      const aliases = swarmPrivateAliases(app.name, manifest, process);
      try {
        const network = await options.networkFor(app);
        return [{ name: swarmOverlayName(network.name), aliases, subnet: network.ipv4Subnet, ipv6Subnet: network.ipv6Subnet ?? null }];
      } catch (err) {
        if (aliases.length > 0) throw err;
        options.log.warn({ err: isPierError(err) ? err.message : err, app: app.name, process }, 'private network unavailable; the service starts without it');
        return [];
      }
    },
    /**
     * The service spec with its private network, names and environment added, and the labels that
     * tell each node's agent which ports its tasks offer there (api/agent/task-firewall.ts).
     */
    async withPrivate(spec: SwarmGroupSpec, app: { name: string; orgId: string; environment?: string | undefined }, manifest: Manifest, process: string): Promise<SwarmGroupSpec> {
      const attached = await this.attachments(app, manifest, process);
      const [first] = attached;
      if (!first) return spec;
      return {
        ...spec,
        labels: { ...spec.labels, ...offerLabels(first.subnet, privatePorts(manifest, process), first.ipv6Subnet) },
        networks: attached.map(({ name, aliases }) => ({ name, aliases })),
        env: { ...spec.env, ...swarmPrivateEnv(app.name, manifest, process) },
      };
    },
  };
}

export type SwarmPrivate = ReturnType<typeof createSwarmPrivate>;

/**
 * `pier describe app` on a swarm: a task container does not list its service's aliases (they
 * are in the service spec, answered by Swarm's DNS for every running task), so each running
 * task of an offering group is shown with the names of its group (read from the current release).
 */
export function withSwarmNames<V extends { instances: { process: string; names: string[] }[] }>(view: V, app: string, manifest: Manifest | undefined): V {
  if (!manifest) return view;
  return { ...view, instances: view.instances.map((i) => (i.names.length ? i : { ...i, names: swarmPrivateAliases(app, manifest, i.process) })) };
}

/** Said at every start of `pier server --runtime swarm` and by `pier doctor`: what a swarm's private network does not do. */
export const SWARM_PRIVATE_WARNING =
  'on a swarm, offered ports ([[private]] ports) are enforced, and IPv6 addresses and the hosts file\'s names given, only in the tasks of nodes whose `pier agent` runs with --docker-host (on any other node every port of a task is open to its environment\'s network, tasks get no IPv6 address, Swarm on Engine 20.10 gives none, and names come from Swarm\'s DNS alone: A records of running tasks, not Pier\'s checks); see docs/guide-connect-privately.md';

type AgentState = { enforced: number; problem: string | null; ipv6?: Record<string, string> | undefined } | null | 'unreachable';

/**
 * `pier describe app`'s `private.limits` on a swarm, from what each node agent says now about the
 * offered ports of its node's tasks (AgentRoots.offeredPorts). Pure.
 */
export function swarmPrivateLimits(agents: Record<string, AgentState>): string {
  return `${SWARM_PRIVATE_BASE}; ${swarmOfferedPorts(agents)}`;
}

/** The limits, and the IPv6 address each agent gave its node's tasks (by container id). Pure. */
export function swarmPrivateState(agents: Record<string, AgentState>): { limits: string; taskIpv6: Record<string, string> } {
  const taskIpv6: Record<string, string> = {};
  for (const s of Object.values(agents)) if (s && s !== 'unreachable') Object.assign(taskIpv6, s.ipv6 ?? {});
  return { limits: swarmPrivateLimits(agents), taskIpv6 };
}

/** What a swarm's private networks do differently, whatever the agents do. */
export const SWARM_PRIVATE_BASE = 'on a swarm, Swarm\'s DNS answers the names with A records of running tasks only; the AAAA and A records of ready instances (Pier\'s checks) are in each task\'s hosts file, written by its node\'s agent, which clients that resolve with getaddrinfo read first (nslookup and dig do not)';

/** Where offered ports are enforced, from what each node agent says (AgentRoots.offeredPorts). Pure. */
export function swarmOfferedPorts(agents: Record<string, AgentState>): string {
  const on = Object.entries(agents).filter(([, s]) => s !== null && s !== 'unreachable').map(([a]) => a);
  const off = Object.entries(agents)
    .filter(([, s]) => s === null || s === 'unreachable')
    .map(([a, s]) => `${a} (${s === null ? 'its agent runs without --docker-host' : 'its agent does not answer'})`);
  const problems = Object.entries(agents).flatMap(([a, s]) => (s && s !== 'unreachable' && s.problem ? [`${a}: ${s.problem}`] : []));
  const open = "every port of a task there is open to its environment's network, and it has no IPv6 address";
  const enforced = on.length
    ? `offered ports ([[private]] ports) are enforced, and IPv6 addresses given, in the tasks on ${on.join(', ')}; not on ${off.length ? `${off.join(', ')}, nor on ` : ''}any node without an agent: ${open}`
    : `offered ports ([[private]] ports) are not enforced, and tasks have no IPv6 address: no node agent runs with --docker-host${off.length ? ` (${off.join(', ')})` : ''}, so ${open}`;
  return `${enforced}${problems.length ? `; last failures: ${problems.join('; ')}` : ''}`;
}
