// The runtime of `pier server --runtime swarm`: the swarm manager's engine for what the manager
// answers (images, events, reachability), each node's own engine for what Swarm has no API for
// (a task container's logs, exec, inspect, and stopping a task that fails its checks), and never a
// container started by Pier: Swarm starts every task (swarm-reconciler.ts asks it for services).
// Tasks are reached at their node's address and published port, so connect is a plain TCP
// connection and there is no Pier network to make. A private network (api/private/) is an
// overlay network on the manager (swarm-overlays.ts): services join it through their spec.
import type { Logger } from 'pino';
import { PRIVATE_LABELS } from '../private/private-network-key.js';
import { PierError } from '../pier-error.js';
import type { ContainerInfo, LogLine, LogStreamOptions, NetworkInfo, NetworkSpec, Runtime } from './runtime.js';
import type { SwarmOverlays } from './swarm-overlays.js';
import type { SwarmServices } from './swarm-services.js';

export interface SwarmRuntimeOptions {
  /** The manager's engine (DOCKER_HOST). */
  manager: Runtime;
  services: SwarmServices;
  /**
   * Other nodes' engines, by node address (PIER_SWARM_NODE_ENGINES): logs, exec and stops of the
   * task containers that run there. A node without one still runs tasks; those calls then fail
   * with E_NODE_ENGINE_UNKNOWN.
   */
  nodeEngines: Map<string, Runtime>;
  /** Makes private networks as overlays; none: a private network is not made (as before). */
  overlays?: SwarmOverlays | undefined;
  /** Where a node engine's failure to remove a volume is told (it is not the caller's failure). */
  log?: Logger | undefined;
}

export function createSwarmRuntime(options: SwarmRuntimeOptions): Runtime {
  const { manager } = options;
  const engines = (): Runtime[] => [manager, ...options.nodeEngines.values()];
  /** Which engine holds a container, remembered once found (a container never changes node). */
  const where = new Map<string, Runtime>();

  async function find(id: string): Promise<{ engine: Runtime; info: ContainerInfo } | null> {
    const known = where.get(id);
    if (known) {
      const info = await known.inspect(id);
      if (info) return { engine: known, info };
      where.delete(id);
    }
    for (const engine of engines()) {
      const info = await engine.inspect(id).catch(() => null);
      if (info) {
        where.set(info.id, engine);
        if (id !== info.id) where.set(id, engine);
        return { engine, info };
      }
    }
    return null;
  }

  async function engineOf(id: string): Promise<Runtime> {
    const found = await find(id);
    if (found) return found.engine;
    throw new PierError('E_NODE_ENGINE_UNKNOWN', `container ${id} is on no engine Pier can reach (the manager's, or one named in PIER_SWARM_NODE_ENGINES)`, {
      status: 404,
      hint: 'name each node\'s engine in PIER_SWARM_NODE_ENGINES (ADDRESS=unix:///path or ADDRESS=…, comma separated), or the container is gone',
    });
  }

  return {
    async ping() {
      await manager.ping();
      await options.services.requireManager();
    },
    async ensureNetwork(spec: NetworkSpec): Promise<NetworkInfo> {
      if (options.overlays && spec.labels[PRIVATE_LABELS.private] === 'true') return options.overlays.ensure(spec);
      // No Pier network on a swarm: tasks are reached at their node's address.
      return { id: '', name: spec.name, subnet: null, labels: spec.labels, created: false };
    },
    async connectNetwork() {},
    async disconnectNetwork() {},
    // A private network's overlay, once no service uses it (the reaper's, for destroyed previews).
    async removeNetwork(name: string) {
      return options.overlays ? options.overlays.remove(name) : true;
    },
    // Private overlays are found by name (swarm-overlays.ts); none is listed for sweeping.
    async listNetworks() {
      return [];
    },
    connect: (address, port, o) => manager.connect(address, port, o),
    resolveImage: (reference, pull) => manager.resolveImage(reference, pull),
    async run(spec) {
      throw new PierError('E_SWARM_NO_CONTAINERS', `Pier starts no container itself on a swarm (asked for ${spec.name}); Swarm starts each task of a service`, {
        status: 409,
        hint: 'on a swarm, instances come from swarm services: deploy the app and Pier asks Swarm for them',
      });
    },
    async create(spec) {
      throw new PierError('E_SWARM_NO_CONTAINERS', `Pier makes no container itself on a swarm (asked for ${spec.name}); Swarm starts each task of a service`, { status: 409, hint: 'on a swarm, instances come from swarm services' });
    },
    async start(id) {
      throw new PierError('E_SWARM_NO_CONTAINERS', `Pier starts no container itself on a swarm (asked for ${id}); Swarm starts each task of a service`, { status: 409, hint: 'on a swarm, instances come from swarm services' });
    },
    async stop(id, timeoutSeconds) {
      const found = await find(id);
      if (found) return found.engine.stop(found.info.id, timeoutSeconds);
      // Gone on every engine Pier reaches: fine when every node's engine is known.
      if ((await options.services.nodes()).length > options.nodeEngines.size + 1) await engineOf(id);
    },
    async remove(id) {
      const found = await find(id);
      if (found) return found.engine.remove(found.info.id);
    },
    async inspect(id) {
      return (await find(id))?.info ?? null;
    },
    async list(labels) {
      // The manager must answer; a node whose engine is down (Swarm moves its tasks) is skipped.
      const lists = await Promise.all([manager.list(labels), ...[...options.nodeEngines.values()].map((e) => e.list(labels).catch(() => []))]);
      return lists.flat();
    },
    async logs(id, tail) {
      return (await engineOf(id)).logs(id, tail);
    },
    streamLogs(id: string, o: LogStreamOptions): AsyncIterable<LogLine> {
      return {
        async *[Symbol.asyncIterator]() {
          yield* (await engineOf(id)).streamLogs(id, o);
        },
      };
    },
    async exec(id, cmd, o) {
      return (await engineOf(id)).exec(id, cmd, o);
    },
    async execInteractive(id, cmd, o) {
      return (await engineOf(id)).execInteractive(id, cmd, o);
    },
    // A volume stays on its node (Swarm's cluster volumes need Engine 23+): the manager's engine.
    ensureVolume: (spec) => manager.ensureVolume(spec),
    // A volume on a node's root is a Docker volume on that node's engine (its task made it there):
    // removed there too when the node's engine is known, so no stale entry is left binding a
    // folder that is gone. Best effort on the nodes: a node engine that is down or refuses does
    // not fail the delete (the manager's answer does, as on one machine).
    async removeVolume(name) {
      await manager.removeVolume(name);
      await Promise.all(
        [...options.nodeEngines].map(([address, engine]) =>
          engine.removeVolume(name).catch((err: unknown) => options.log?.warn({ err, volume: name, node: address }, 'Docker volume not removed on a node; it binds nothing Pier keeps')),
        ),
      );
    },
    async pause(id) {
      return (await engineOf(id)).pause(id);
    },
    async unpause(id) {
      return (await engineOf(id)).unpause(id);
    },
    events: (signal) => manager.events(signal),
  };
}
