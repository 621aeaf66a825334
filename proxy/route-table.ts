// The immutable route table the data plane serves: listener key -> what to do with a connection
// there (one endpoint, or an SNI router over passthrough endpoints sharing the port), plus each
// endpoint's balancer, parsed CIDR lists and counters. A new snapshot builds a new table, reusing
// Backend and stats objects whose identity is unchanged; the edge swaps one reference to it.

import type { EdgeConfig, EndpointConfig } from './edge-config.js';
import { Backend, backendKey } from './backend.js';
import { Balancer } from './balancer.js';
import { CidrList } from './cidr-list.js';
import { EndpointStats } from './edge-metrics.js';
import { canonicalIp, listenerKey } from './peer-address.js';
import { createSniRouter, type SniRouter } from './sni-router.js';
import { routeTls } from './tls/route-tls.js';
import type { RouteTls } from './tls/tls-termination.js';

export interface Route {
  readonly endpoint: EndpointConfig;
  readonly balancer: Balancer;
  readonly stats: EndpointStats;
  /** null: everyone may connect (minus deny). */
  readonly allow: CidrList | null;
  readonly deny: CidrList | null;
  /** v2 TLVs to send. */
  readonly tlvAuthority: boolean;
  readonly tlvUniqueId: boolean;
  readonly tlvCrc32c: boolean;
  /** Set for tls: terminate endpoints: the contexts and handshake settings (proxy/tls/). */
  readonly tls: RouteTls | null;
}

/** What a listener does with an accepted socket. */
export interface ListenerRoute {
  readonly key: string;
  /** Trusted PROXY senders when the port requires a PROXY header, else null. */
  readonly proxyIn: CidrList | null;
  /** Set when the port peeks at the ClientHello (TLS passthrough endpoints); `single` is then null. */
  readonly sni: SniRouter | null;
  readonly single: Route | null;
}

export interface ListenerSpec {
  readonly key: string;
  /** Canonical IP literal. */
  readonly address: string;
  readonly port: number;
  /** The endpoints served here, comma-separated (several only for SNI passthrough). */
  readonly endpointId: string;
}

export class RouteTable {
  static readonly empty = new RouteTable(null, new Map(), new Map(), new Map(), new Map());

  constructor(
    /** The snapshot this table serves (deep-frozen), or null before the first apply. */
    readonly config: EdgeConfig | null,
    readonly routes: ReadonlyMap<string, ListenerRoute>,
    readonly listeners: ReadonlyMap<string, ListenerSpec>,
    readonly backends: ReadonlyMap<string, Backend>,
    /** Endpoint id -> route. */
    readonly endpoints: ReadonlyMap<string, Route>,
  ) {}

  get version(): number | null {
    return this.config === null ? null : this.config.version;
  }

  route(key: string): ListenerRoute | undefined {
    return this.routes.get(key);
  }
}

export interface BuiltRouteTable {
  table: RouteTable;
  /** Backends of the previous table that the new one no longer has: they must drain. */
  removed: Backend[];
  /** Stats of endpoints the new table no longer has. */
  removedStats: EndpointStats[];
}

/** Builds the table for a validated snapshot. Pure apart from creating Backend and stats objects. */
export function buildRouteTable(config: EdgeConfig, previous: RouteTable, ticketKeys?: Buffer): BuiltRouteTable {
  const snapshot = deepFreeze(structuredClone(config));
  const listeners = new Map<string, ListenerSpec>();
  const backends = new Map<string, Backend>();
  const endpoints = new Map<string, Route>();
  const byListener = new Map<string, Route[]>();

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
    const stats = previous.endpoints.get(endpoint.id)?.stats ?? new EndpointStats(endpoint.id, endpoint.app, endpoint.name ?? endpoint.id);
    stats.app = endpoint.app;
    stats.name = endpoint.name ?? endpoint.id;
    const tlvs = endpoint.proxyProtocol === 'v2' ? (endpoint.proxyProtocolTlvs ?? []) : [];
    const route: Route = {
      endpoint,
      balancer: new Balancer(members),
      stats,
      allow: endpoint.allow === undefined || endpoint.allow.length === 0 ? null : CidrList.parse(endpoint.allow),
      deny: endpoint.deny === undefined || endpoint.deny.length === 0 ? null : CidrList.parse(endpoint.deny),
      tlvAuthority: tlvs.includes('authority'),
      tlvUniqueId: tlvs.includes('unique-id'),
      tlvCrc32c: tlvs.includes('crc32c'),
      tls: routeTls(endpoint, snapshot, ticketKeys),
    };
    endpoints.set(endpoint.id, route);
    for (const bind of endpoint.bind) {
      const key = listenerKey(bind.address, bind.port);
      const shared = byListener.get(key);
      if (shared === undefined) byListener.set(key, [route]);
      else shared.push(route);
      const spec = listeners.get(key);
      listeners.set(key, {
        key,
        address: canonicalIp(bind.address),
        port: bind.port,
        endpointId: spec === undefined ? endpoint.id : `${spec.endpointId},${endpoint.id}`,
      });
    }
  }

  const routes = new Map<string, ListenerRoute>();
  for (const [key, members] of byListener) {
    const first = members[0]!;
    // Validation made every endpoint on a shared port agree on PROXY-in and be passthrough.
    const trusted = first.endpoint.acceptProxyProtocol?.trustedCidrs;
    const passthrough = first.endpoint.tls === 'passthrough';
    routes.set(key, {
      key,
      proxyIn: trusted === undefined ? null : CidrList.parse(trusted),
      sni: passthrough ? createSniRouter(members) : null,
      single: passthrough ? null : first,
    });
  }

  const removed = [...previous.backends.values()].filter((b) => backends.get(b.key) !== b);
  const removedStats = [...previous.endpoints.values()].filter((r) => !endpoints.has(r.endpoint.id)).map((r) => r.stats);
  return { table: new RouteTable(snapshot, routes, listeners, backends, endpoints), removed, removedStats };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
