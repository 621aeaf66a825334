// Builds the edge's configuration snapshot from the database (endpoints × instances that run)
// and hands each new version to subscribers: the in-process edge and the watch stream.
import type { Logger } from 'pino';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, endpoints, instances, type Endpoint } from '../db/schema/index.js';
import type { BindAddress, EdgeConfig, EndpointConfig } from '../proxy/edge-config.js';

export interface EdgeFeedOptions {
  db: Db;
  log: Logger;
  /** The shared addresses every endpoint is served on. */
  sharedAddresses: string[];
}

export interface EdgeFeed {
  /** The latest snapshot (version 0 and no endpoints before the first build). */
  current(): EdgeConfig;
  /** Rebuilds soon; several calls close together make one rebuild. */
  refresh(): void;
  /** Rebuilds now and resolves with the snapshot. */
  rebuild(): Promise<EdgeConfig>;
  subscribe(listener: (config: EdgeConfig) => void): () => void;
}

export function createEdgeFeed(options: EdgeFeedOptions): EdgeFeed {
  const { db } = options;
  const log = options.log.child({ component: 'edge-feed' });
  const listeners = new Set<(config: EdgeConfig) => void>();
  let snapshot: EdgeConfig = { version: 0, endpoints: [] };
  let fingerprint = '';
  let pending: NodeJS.Timeout | null = null;
  let building: Promise<EdgeConfig> | null = null;

  async function build(): Promise<EdgeConfig> {
    const eps = await db
      .select({ endpoint: endpoints, appName: apps.name })
      .from(endpoints)
      .innerJoin(apps, eq(apps.id, endpoints.appId));
    const live = await db
      .select({ id: instances.id, appId: instances.appId, process: instances.process, hostAddress: instances.hostAddress, hostPorts: instances.hostPorts })
      .from(instances)
      .where(and(eq(instances.desiredState, 'running'), eq(instances.observedState, 'running'), inArray(instances.health, ['none', 'healthy'])));
    // Grouped once, so a build is linear in endpoints + instances (a thousand apps take milliseconds).
    const byProcess = new Map<string, typeof live>();
    for (const i of live) {
      const key = `${i.appId}\0${i.process}`;
      const group = byProcess.get(key);
      if (group) group.push(i);
      else byProcess.set(key, [i]);
    }
    const list: EndpointConfig[] = eps
      .map(({ endpoint: e, appName }) => ({
        id: `${appName}/${e.port}`,
        app: appName,
        bind: bindAddresses(e.bindings, e.port, options.sharedAddresses),
        proxyProtocol: e.proxyProtocol,
        backends: (byProcess.get(`${e.appId}\0${e.process}`) ?? [])
          .filter((i) => i.hostAddress && i.hostPorts[String(e.targetPort)])
          .map((i) => ({ id: i.id, address: i.hostAddress as string, port: i.hostPorts[String(e.targetPort)] as number }))
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
        ...edgeOptions(e),
      }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const print = JSON.stringify(list);
    if (print !== fingerprint) {
      fingerprint = print;
      // Versions only grow, also across restarts, so an edge never mistakes a new snapshot for an old one.
      snapshot = { version: Math.max(snapshot.version + 1, Date.now()), endpoints: list };
      log.info({ version: snapshot.version, endpoints: list.length }, 'edge config changed');
      for (const l of listeners) l(snapshot);
    }
    return snapshot;
  }

  function rebuild(): Promise<EdgeConfig> {
    // Serialise builds so two never race to publish out of order.
    const next = (building ?? Promise.resolve(snapshot)).catch(() => snapshot).then(build);
    building = next;
    return next;
  }

  return {
    current: () => snapshot,
    refresh() {
      if (pending) return;
      pending = setTimeout(() => {
        pending = null;
        rebuild().catch((err) => log.error({ err }, 'edge config build failed'));
      }, 20);
      pending.unref();
    },
    rebuild,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** The endpoint's optional edge settings, present only when set (absent means off). */
function edgeOptions(e: Endpoint): Partial<EndpointConfig> {
  const out: Partial<EndpointConfig> = {};
  if (e.proxyProtocolTlvs.length) out.proxyProtocolTlvs = e.proxyProtocolTlvs;
  if (e.tls === 'passthrough') {
    out.tls = 'passthrough';
    out.sni = e.sni;
    if (e.sniDefault) out.sniDefault = true;
  }
  if (e.allow.length) out.allow = e.allow;
  if (e.deny.length) out.deny = e.deny;
  if (e.maxConnections !== null) out.maxConnections = e.maxConnections;
  if (e.maxConnectionsPerClient !== null) out.maxConnectionsPerClient = e.maxConnectionsPerClient;
  if (e.idleTimeoutMs !== null) out.idleTimeoutMs = e.idleTimeoutMs;
  return out;
}

function bindAddresses(bindings: string[], port: number, shared: string[]): BindAddress[] {
  return (bindings.length ? bindings : shared).map((address) => ({ address, port }));
}
