// The immutable route table the data plane serves: listener key -> endpoint and balancer. A new
// snapshot builds a new table (reusing Backend objects whose id and target are unchanged, so
// connection counts carry over); the edge swaps one reference to it.

import type { EdgeConfig, EndpointConfig } from './edge-config.js';
import { Backend, backendKey } from './backend.js';
import { Balancer } from './balancer.js';
import { canonicalIp, listenerKey } from './peer-address.js';

export interface Route {
  readonly key: string;
  readonly endpoint: EndpointConfig;
  readonly balancer: Balancer;
}

export interface ListenerSpec {
  readonly key: string;
  /** Canonical IP literal. */
  readonly address: string;
  readonly port: number;
  readonly endpointId: string;
}

export class RouteTable {
  static readonly empty = new RouteTable(null, new Map(), new Map(), new Map());

  constructor(
    /** The snapshot this table serves (deep-frozen), or null before the first apply. */
    readonly config: EdgeConfig | null,
    readonly routes: ReadonlyMap<string, Route>,
    readonly listeners: ReadonlyMap<string, ListenerSpec>,
    readonly backends: ReadonlyMap<string, Backend>,
  ) {}

  get version(): number | null {
    return this.config === null ? null : this.config.version;
  }

  route(key: string): Route | undefined {
    return this.routes.get(key);
  }
}

export interface BuiltRouteTable {
  table: RouteTable;
  /** Backends of the previous table that the new one no longer has: they must drain. */
  removed: Backend[];
}

/** Builds the table for a validated snapshot. Pure apart from creating Backend objects. */
export function buildRouteTable(config: EdgeConfig, previous: RouteTable): BuiltRouteTable {
  const snapshot = deepFreeze(structuredClone(config));
  const routes = new Map<string, Route>();
  const listeners = new Map<string, ListenerSpec>();
  const backends = new Map<string, Backend>();

  for (const endpoint of snapshot.endpoints) {
    const members: Backend[] = [];
    for (const b of endpoint.backends) {
      const key = backendKey(endpoint.id, b.id);
      const old = previous.backends.get(key);
      const backend =
        old !== undefined && !old.draining && old.address === b.address && old.port === b.port
          ? old
          : new Backend(endpoint.id, b.id, b.address, b.port);
      backends.set(key, backend);
      members.push(backend);
    }
    const balancer = new Balancer(members);
    for (const bind of endpoint.bind) {
      const key = listenerKey(bind.address, bind.port);
      routes.set(key, { key, endpoint, balancer });
      listeners.set(key, { key, address: canonicalIp(bind.address), port: bind.port, endpointId: endpoint.id });
    }
  }

  const removed = [...previous.backends.values()].filter((b) => backends.get(b.key) !== b);
  return { table: new RouteTable(snapshot, routes, listeners, backends), removed };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
