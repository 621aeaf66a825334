// Pier's network on a Docker engine: a user-defined bridge, found by name and reused, created
// (labelled, on the configured subnet) when missing. Containers join it and are reached at their
// address on it, so no port is published on the host and no docker-proxy sits in the path.
import type Docker from 'dockerode';
import { PierError } from '../pier-error.js';
import { containerNotFound, dockerMessage, statusOf, type EngineErrors } from './docker-errors.js';
import { LABELS, type NetworkInfo, type NetworkSpec } from './runtime.js';

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
    const subnet = info.IPAM?.Config?.find((c) => c.Subnet && !c.Subnet.includes(':'))?.Subnet ?? null;
    return { id: info.Id, name: info.Name, subnet, labels, created };
  }

  return {
    async connectNetwork(id: string, network: string): Promise<void> {
      try {
        await docker.getNetwork(network).connect({ Container: id });
      } catch (err) {
        const status = statusOf(err);
        const words = dockerMessage(err);
        // Docker answers 403 (or 500 on older engines) when the container is on it already.
        if (/already exists|already attached/i.test(words)) return;
        if (status === 404) throw /network/i.test(words) && !/container/i.test(words) ? networkNotFound(network, err) : containerNotFound(id, err);
        throw errors.engineError(err, `connect container ${id} to network ${network}`);
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
          IPAM: { Driver: 'default', Config: [{ Subnet: spec.subnet }] },
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
