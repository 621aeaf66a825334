// The storage roots of this node, by name: `default` (the volumes folder, where new volumes are
// made) and any given with --volume-root NAME=PATH. A volume row and a snapshot row name their
// root; each root has its own driver (picked by its filesystem). A move goes from one root to
// another (api/volumes/volume-mover.ts); until several nodes hold volumes, that is the only move.
// On a swarm, each node's agent is a root too, named `node:ADDRESS` (agent-roots.ts): a volume's
// operations go to the root its row names, so to the agent of the node that holds it.
import { PierError } from '../pier-error.js';
import { nodeRootAddress, type AgentRoots } from './agent-roots.js';
import { openVolumeDriver } from './open-volume-driver.js';
import type { DriverKind, VolumeDriver } from './volume-driver.js';

export const DEFAULT_ROOT = 'default';

export interface VolumeRoots {
  readonly default: VolumeDriver;
  names(): string[];
  has(name: string): boolean;
  /** The driver of a root; a root this server was not given is E_VOLUME_ROOT_UNKNOWN. */
  get(name: string): VolumeDriver;
}

export function createVolumeRoots(drivers: Map<string, VolumeDriver>, nodes?: AgentRoots): VolumeRoots {
  const first = drivers.get(DEFAULT_ROOT);
  if (!first) throw new Error('the default volume root is required');
  return {
    default: first,
    names: () => [...drivers.keys()],
    has: (name) => drivers.has(name),
    get(name) {
      const d = drivers.get(name);
      const node = nodeRootAddress(name);
      if (!d && node !== null && nodes) return nodes.get(node);
      if (!d) {
        throw new PierError('E_VOLUME_ROOT_UNKNOWN', `this server has no volume root "${name}" (its roots: ${[...drivers.keys()].join(', ')})`, {
          status: 400,
          hint: `roots here: ${[...drivers.keys()].join(', ')}; add one with pier server --volume-root NAME=PATH`,
        });
      }
      return d;
    },
  };
}

/** Opens the default root and the named ones; a root that cannot be used stops nothing but itself (a warning). */
export async function openVolumeRoots(dir: string, kind: DriverKind | 'auto', extra: Record<string, string>, warn: (message: string) => void, nodes?: AgentRoots): Promise<VolumeRoots | undefined> {
  const drivers = new Map<string, VolumeDriver>();
  try {
    drivers.set(DEFAULT_ROOT, await openVolumeDriver(dir, kind));
  } catch (err) {
    warn(`volumes are unavailable: ${(err as Error).message}`);
    return undefined;
  }
  for (const [name, path] of Object.entries(extra)) {
    try {
      drivers.set(name, await openVolumeDriver(path, kind));
    } catch (err) {
      warn(`volume root ${name} (${path}) is unavailable: ${(err as Error).message}`);
    }
  }
  return createVolumeRoots(drivers, nodes);
}
