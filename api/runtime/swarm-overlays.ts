// Private networks on a swarm: one attachable overlay network per environment, made on the
// manager, which every node joins when a task of a service on it lands there (VXLAN between the
// nodes). Swarm's embedded DNS answers each service's network aliases with the addresses of its
// running tasks, on every node, so PROCESS.APP.internal is the same name across machines.
//
// IPv4 only, for a measured reason (docs/several-machines.md, "Private networks"): on Engine
// 20.10 Swarm does not allocate IPv6 addresses to tasks on an `--ipv6` overlay. Each node hands
// out addresses from the IPv6 subnet on its own, so tasks on two nodes got the same fd00:…::3,
// and the embedded DNS answers no AAAA record for a service alias (an AAAA query for it was even
// forwarded and timed out, stalling clients that ask AAAA first). An IPv4-only overlay answers an
// AAAA query at once with no records, and A with every running task. Per-node bridge networks
// with routes (measured in the same section) carry IPv6 between nodes but get no names at all
// from Swarm's DNS, so they would lose the IPv4 names this overlay gives.
import Docker from 'dockerode';
import { createEngineErrors, dockerMessage, statusOf } from './docker-errors.js';
import type { NetworkInfo, NetworkSpec } from './runtime.js';

export interface SwarmOverlaysOptions {
  /** The manager's API socket. */
  socketPath: string;
}

export interface SwarmOverlays {
  /** The overlay of `spec` (its IPv4 subnet; `ipv6Subnet` is not used), found by name or made. */
  ensure(spec: NetworkSpec): Promise<NetworkInfo>;
  /**
   * Removes the overlay of a private network (by its Pier name): true when it is gone (or never
   * was), false while a service or a task still uses it (nothing changed; try again later).
   */
  remove(name: string): Promise<boolean>;
}

/**
 * The overlay's name on the swarm. Swarm wants a network name to be a valid DNS name component,
 * and a preview's network is `pier-private-ORG.ENV` (private-network-key.ts): its dot becomes
 * `--` (org ids have no dash, so no two keys meet). Production's name is unchanged.
 */
export function swarmOverlayName(name: string): string {
  return name.replace(/\./g, '--');
}

/** The Engine API body that makes a private overlay network. Pure. */
export function overlayCreateOptions(spec: NetworkSpec): Docker.NetworkCreateOptions {
  return {
    Name: swarmOverlayName(spec.name),
    Driver: 'overlay',
    // Attachable: `docker run --network` on any node may join it (debugging, one-off tasks).
    Attachable: true,
    CheckDuplicate: true,
    Labels: spec.labels,
    IPAM: { Driver: 'default', Config: [{ Subnet: spec.subnet }] },
  };
}

interface RawNetwork {
  Id: string;
  Name: string;
  Driver?: string;
  Labels?: Record<string, string> | null;
  IPAM?: { Config?: { Subnet?: string }[] | null };
}

export function createSwarmOverlays(options: SwarmOverlaysOptions): SwarmOverlays {
  const docker = new Docker({ socketPath: options.socketPath });
  const { engineError } = createEngineErrors(options.socketPath);

  async function find(name: string): Promise<RawNetwork | null> {
    try {
      const list = (await docker.listNetworks({ filters: { name: [name] } })) as RawNetwork[];
      // The name filter matches substrings: keep the exact name only.
      return list.find((n) => n.Name === name) ?? null;
    } catch (err) {
      throw engineError(err, `list networks named ${name}`);
    }
  }

  function info(raw: RawNetwork, created: boolean): NetworkInfo {
    const subnets = (raw.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => typeof s === 'string');
    return {
      id: raw.Id,
      name: raw.Name,
      subnet: subnets.find((s) => !s.includes(':')) ?? null,
      labels: raw.Labels ?? {},
      created,
      ipv6Subnet: subnets.find((s) => s.includes(':')) ?? null,
    };
  }

  return {
    async ensure(spec) {
      const name = swarmOverlayName(spec.name);
      const existing = await find(name);
      if (existing) return info(existing, false);
      try {
        const made = await docker.createNetwork(overlayCreateOptions(spec));
        return info({ Id: made.id, Name: name, Labels: spec.labels, IPAM: { Config: [{ Subnet: spec.subnet }] } }, true);
      } catch (err) {
        // Another server made it between the look and the create.
        if (statusOf(err) === 409) {
          const again = await find(name);
          if (again) return info(again, false);
        }
        throw engineError(err, `create overlay network ${name}`);
      }
    },
    async remove(pierName) {
      const name = swarmOverlayName(pierName);
      const existing = await find(name);
      if (!existing) return true;
      try {
        // By id: the exact network found by name, never one whose id starts with the name.
        await docker.getNetwork(existing.Id).remove();
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return true;
        // The manager refuses while a service's spec names it ("is in use by service …") or a
        // task of a removed service is still shutting down on a node ("… by task …").
        if (/in use|active endpoints/i.test(dockerMessage(err))) return false;
        throw engineError(err, `remove overlay network ${name}`);
      }
    },
  };
}
