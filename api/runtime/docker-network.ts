// Pier's network on a Docker engine: a user-defined bridge, found by name and reused, created
// (labelled, on the configured subnet) when missing. Containers join it and are reached at their
// address on it, so no port is published on the host and no docker-proxy sits in the path.
import type Docker from 'dockerode';
import { PierError } from '../pier-error.js';
import { containerNotFound, dockerMessage, statusOf, type EngineErrors } from './docker-errors.js';
import { LABELS, type JoinOptions, type NetworkEndpoint, type NetworkInfo, type NetworkSpec } from './runtime.js';

export function createDockerNetworks(docker: Docker, errors: EngineErrors) {
  async function find(name: string): Promise<Docker.NetworkInspectInfo | null> {
    try {
      return (await docker.getNetwork(name).inspect()) as Docker.NetworkInspectInfo;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw errors.engineError(err, `inspect network ${name}`);
    }
  }

  function checked(info: Docker.NetworkInspectInfo, created: boolean): NetworkInfo {
    const labels = info.Labels ?? {};
    if (labels[LABELS.managed] !== 'true') {
      throw new PierError('E_NETWORK_CONFLICT', `the Docker network "${info.Name}" exists and was not made by Pier`, {
        status: 409,
        hint: 'Pier only joins containers to a network it created (label dev.pier.managed=true): set PIER_NETWORK to another name',
      });
    }
    if (info.Driver !== 'bridge') {
      throw new PierError('E_NETWORK_CONFLICT', `the Docker network "${info.Name}" uses the ${info.Driver} driver, not bridge`, {
        status: 409,
        hint: 'remove it (docker network rm) or set PIER_NETWORK to another name',
      });
    }
    return describe(info, created);
  }

  function describe(info: Docker.NetworkInspectInfo, created: boolean): NetworkInfo {
    const subnet = info.IPAM?.Config?.find((c) => c.Subnet && !c.Subnet.includes(':'))?.Subnet ?? null;
    const ipv6Subnet = info.IPAM?.Config?.find((c) => c.Subnet?.includes(':'))?.Subnet ?? null;
    return { id: info.Id, name: info.Name, subnet, ipv6Subnet, labels: info.Labels ?? {}, created };
  }

  return {
    async connectNetwork(id: string, network: string, options: JoinOptions = {}): Promise<void> {
      const ipam = { ...(options.ipv4 ? { IPv4Address: options.ipv4 } : {}), ...(options.ipv6 ? { IPv6Address: options.ipv6 } : {}) };
      const endpoint = { ...(options.aliases?.length ? { Aliases: options.aliases } : {}), ...(Object.keys(ipam).length ? { IPAMConfig: ipam } : {}) };
      try {
        await docker.getNetwork(network).connect({ Container: id, ...(Object.keys(endpoint).length ? { EndpointConfig: endpoint } : {}) });
      } catch (err) {
        const status = statusOf(err);
        const words = dockerMessage(err);
        // Docker answers 403 (or 500 on older engines) when the container is on it already.
        if (/already exists|already attached/i.test(words)) return;
        if (status === 404) throw /network/i.test(words) && !/container/i.test(words) ? networkNotFound(network, err) : containerNotFound(id, err);
        throw errors.engineError(err, `connect container ${id} to network ${network}`);
      }
    },

    async disconnectNetwork(id: string, network: string): Promise<void> {
      try {
        await docker.getNetwork(network).disconnect({ Container: id, Force: true });
      } catch (err) {
        const words = dockerMessage(err);
        // Gone, or not on it: what was asked is true already.
        if (statusOf(err) === 404 || /is not connected|not found|no such/i.test(words)) return;
        throw errors.engineError(err, `disconnect container ${id} from network ${network}`);
      }
    },

    async removeNetwork(name: string): Promise<boolean> {
      try {
        await docker.getNetwork(name).remove();
        return true;
      } catch (err) {
        if (statusOf(err) === 404) return true;
        // "has active endpoints": a container is still on it.
        if (statusOf(err) === 403 || statusOf(err) === 409 || /active endpoints/i.test(dockerMessage(err))) return false;
        throw errors.engineError(err, `remove network ${name}`);
      }
    },

    async listNetworks(labels: Record<string, string>): Promise<NetworkInfo[]> {
      try {
        const found = await docker.listNetworks({ filters: JSON.stringify({ label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) }) });
        return found.map((n) => describe(n as Docker.NetworkInspectInfo, false));
      } catch (err) {
        throw errors.engineError(err, 'list networks');
      }
    },

    async ensureNetwork(spec: NetworkSpec): Promise<NetworkInfo> {
      const existing = await find(spec.name);
      // Docker also finds a network by a prefix of its id: only the exact name is the one asked for.
      if (existing && existing.Name === spec.name) return checked(existing, false);
      try {
        await docker.createNetwork({
          Name: spec.name,
          Driver: 'bridge',
          // Without it the engine makes a second network of the same name when two servers race.
          CheckDuplicate: true,
          IPAM: { Driver: 'default', Config: [{ Subnet: spec.subnet }, ...(spec.ipv6Subnet ? [{ Subnet: spec.ipv6Subnet }] : [])] },
          ...(spec.ipv6Subnet ? { EnableIPv6: true } : {}),
          ...(spec.options ? { Options: spec.options } : {}),
          Labels: spec.labels,
        });
      } catch (err) {
        const status = statusOf(err);
        // Another server created it first: take theirs.
        if (status === 409) {
          const raced = await find(spec.name);
          if (raced) return checked(raced, false);
        }
        if (status === 403 || /overlap|pool/i.test(dockerMessage(err))) {
          throw new PierError('E_NETWORK_SUBNET_CONFLICT', `cannot create the network "${spec.name}" on ${spec.subnet}: ${dockerMessage(err)}`, {
            status: 409,
            hint: 'another network or route uses that range: set PIER_NETWORK_SUBNET to a free IPv4 range (e.g. 198.19.0.0/16)',
            cause: err,
          });
        }
        throw errors.engineError(err, `create network ${spec.name}`);
      }
      const made = await find(spec.name);
      if (!made) throw new PierError('E_RUNTIME', `docker created the network ${spec.name} but cannot find it`);
      return checked(made, true);
    },
  };
}

/** Network name → addresses and aliases, for the networks where the container has an address (it runs). */
export function containerEndpoints(settings: Docker.ContainerInspectInfo['NetworkSettings'] | undefined): Record<string, NetworkEndpoint> {
  const out: Record<string, NetworkEndpoint> = {};
  for (const [name, endpoint] of Object.entries(settings?.Networks ?? {})) {
    if (!endpoint?.IPAddress && !endpoint?.GlobalIPv6Address) continue;
    // Docker adds the short container id to the aliases itself; only the ones asked for count.
    const aliases = (endpoint.Aliases ?? []).filter((a: string) => !/^[0-9a-f]{12}$/.test(a));
    out[name] = { ipv4: endpoint.IPAddress || null, ipv6: endpoint.GlobalIPv6Address || null, aliases };
  }
  return out;
}

/** Network name → IPv4 address, for the networks where the container has one (it runs). */
export function containerAddresses(settings: Docker.ContainerInspectInfo['NetworkSettings'] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, endpoint] of Object.entries(settings?.Networks ?? {})) {
    if (endpoint?.IPAddress) out[name] = endpoint.IPAddress;
  }
  return out;
}

export function networkNotFound(name: string, cause?: unknown): PierError {
  return new PierError('E_NETWORK_NOT_FOUND', `the Docker network "${name}" does not exist`, {
    status: 503,
    hint: 'Pier creates it at start and before a start that finds it missing; if it keeps failing, check `docker network ls`',
    cause,
  });
}
