// The nodes Pier's instances run on, for `pier nodes`: on a single Docker engine the one node of
// the nodes table ("local"); on a swarm (the engine Pier talks to is a swarm manager) the swarm's
// nodes, as Swarm reports them. Draining and activating are Swarm's: on one engine there is
// nowhere to move instances to, which is said with E_NOT_A_SWARM.
import { and, count, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { instances, nodes } from '../db/schema/index.js';
import { PierError } from './pier-error.js';
import { LABELS } from './runtime/runtime.js';
import type { SwarmServices } from './runtime/swarm-services.js';
import type { NodeView } from './views.js';

export interface NodeDirectory {
  list(): Promise<NodeView[]>;
  /** By id, name or address; E_NODE_NOT_FOUND otherwise. */
  get(ref: string): Promise<NodeView>;
  /** Drain (Swarm moves its instances elsewhere and places none there) or make active again. */
  setAvailability(ref: string, availability: 'drain' | 'active'): Promise<NodeView>;
}

function find(list: NodeView[], ref: string): NodeView {
  const node = list.find((n) => n.id === ref || n.name === ref || n.address === ref);
  if (!node) {
    throw new PierError('E_NODE_NOT_FOUND', `there is no node "${ref}"`, {
      status: 404,
      hint: `use an id, name or address from \`pier nodes list\`: ${list.map((n) => n.address).join(', ') || 'none'}`,
    });
  }
  return node;
}

export function createLocalNodeDirectory(db: Db): NodeDirectory {
  async function list(): Promise<NodeView[]> {
    const rows = await db.select().from(nodes).orderBy(nodes.name);
    const live = await db
      .select({ nodeId: instances.nodeId, n: count() })
      .from(instances)
      .where(and(eq(instances.desiredState, 'running'), inArray(instances.observedState, ['starting', 'running'])))
      .groupBy(instances.nodeId);
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      address: r.publishAddress,
      state: r.state,
      availability: 'active',
      role: 'engine',
      labels: r.labels,
      capacity: null,
      engineVersion: null,
      instances: live.find((l) => l.nodeId === r.id)?.n ?? 0,
    }));
  }
  return {
    list,
    async get(ref) {
      return find(await list(), ref);
    },
    async setAvailability(ref) {
      find(await list(), ref);
      throw new PierError('E_NOT_A_SWARM', 'this Pier runs on a single Docker engine: there is no other node to move its instances to', {
        status: 409,
        hint: 'draining needs several machines: see docs/several-machines.md',
      });
    },
  };
}

export function createSwarmNodeDirectory(services: SwarmServices, installationId: string): NodeDirectory {
  async function list(): Promise<NodeView[]> {
    const [swarmNodes, groups] = await Promise.all([services.nodes(), services.listServices({ [LABELS.managed]: 'true', [LABELS.installation]: installationId })]);
    const perNode = new Map<string, number>();
    for (const g of groups) {
      for (const task of await services.tasks(g.name)) {
        if (task.state === 'running' && task.desiredState === 'running' && task.nodeId) perNode.set(task.nodeId, (perNode.get(task.nodeId) ?? 0) + 1);
      }
    }
    return swarmNodes.map((n) => ({
      id: n.id,
      name: n.hostname,
      address: n.address,
      state: n.state,
      availability: n.availability,
      role: n.role,
      labels: n.labels,
      capacity: n.capacity,
      engineVersion: n.engineVersion,
      instances: perNode.get(n.id) ?? 0,
    }));
  }
  return {
    list,
    async get(ref) {
      return find(await list(), ref);
    },
    async setAvailability(ref, availability) {
      const node = find(await list(), ref);
      await services.setAvailability(node.id, availability);
      return find(await list(), node.id);
    },
  };
}
