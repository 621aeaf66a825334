// Builds the edge's configuration snapshot from the database (endpoints × instances that run)
// and hands each new version to subscribers: the in-process edge and the watch stream. A change
// to one app rebuilds that app's part only and reuses the rest, so a one-app change reaches the
// edge in milliseconds at a thousand apps; a refresh without an app rebuilds everything.
import type { Logger } from 'pino';
import { and, eq, inArray, type SQL } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, endpoints, instances, type Endpoint } from '../db/schema/index.js';
import type { AcmeChallengeConfig, BindAddress, CertificateConfig, EdgeConfig, EndpointConfig } from '../proxy/edge-config.js';
import type { KeyVault } from './certificates/key-vault.js';
import { acmeNamesWanted, readServedCertificates, terminateOptions } from './certificates/served-certificates.js';
import { bindAddressesOf } from './endpoint-bindings.js';

export interface EdgeFeedOptions {
  db: Db;
  log: Logger;
  /** The shared addresses every endpoint is served on. */
  sharedAddresses: string[];
  /** Opens the stored private keys of tls = "terminate" certificates; without it such endpoints are left out. */
  keyVault?: KeyVault;
  /** Pending tls-alpn-01 challenges (api/certificates/acme-challenges.ts, read from the database), sent to every edge. */
  acmeChallenges?: () => AcmeChallengeConfig[] | Promise<AcmeChallengeConfig[]>;
}

export interface EdgeFeed {
  /** The latest snapshot (version 0 and no endpoints before the first build). */
  current(): EdgeConfig;
  /**
   * Rebuilds soon: the part of `appId` only, or everything without one. Calls that arrive while a
   * build runs are gathered into the next one.
   */
  refresh(appId?: string): void;
  /** Rebuilds everything now and resolves with the snapshot. */
  rebuild(): Promise<EdgeConfig>;
  subscribe(listener: (config: EdgeConfig) => void): () => void;
  /** Stops building (pending refreshes are dropped). */
  close(): void;
}

/** More dirty apps than this and a full build is cheaper than a list of ids. */
const PARTIAL_LIMIT = 200;
/** After a failed build, the next try waits this long (doubling up to 10 s). */
const RETRY_MS = 250;

interface AppPart {
  entries: EndpointConfig[];
  /** The certificates the app's tls = "terminate" endpoints serve. */
  certificates: CertificateConfig[];
  print: string;
}

export function createEdgeFeed(options: EdgeFeedOptions): EdgeFeed {
  const { db } = options;
  const log = options.log.child({ component: 'edge-feed' });
  const listeners = new Set<(config: EdgeConfig) => void>();
  const parts = new Map<string, AppPart>();
  let snapshot: EdgeConfig = { version: 0, endpoints: [] };
  let challengePrint = '[]';
  /** Apps to rebuild, or 'all'. */
  let dirty: Set<string> | 'all' = new Set();
  let scheduled = false;
  let building: Promise<void> | null = null;
  let failures = 0;
  let closed = false;

  /** Reads the endpoints and running instances of some apps (all when null), grouped by app. */
  async function read(ids: string[] | null): Promise<{ byApp: Map<string, EndpointConfig[]>; certs: Map<string, CertificateConfig[]> }> {
    const only = (column: typeof endpoints.appId | typeof instances.appId): SQL | undefined => (ids ? inArray(column, ids) : undefined);
    const eps = await db
      .select({ endpoint: endpoints, appName: apps.name })
      .from(endpoints)
      .innerJoin(apps, eq(apps.id, endpoints.appId))
      .where(only(endpoints.appId));
    const live = await db
      .select({ id: instances.id, appId: instances.appId, process: instances.process, address: instances.address, ports: instances.ports })
      .from(instances)
      .where(and(eq(instances.desiredState, 'running'), eq(instances.observedState, 'running'), inArray(instances.health, ['none', 'healthy']), only(instances.appId)));
    const byProcess = new Map<string, typeof live>();
    for (const i of live) {
      const key = `${i.appId}\0${i.process}`;
      const group = byProcess.get(key);
      if (group) group.push(i);
      else byProcess.set(key, [i]);
    }
    const out = new Map<string, EndpointConfig[]>();
    const terminating = eps.filter((x) => x.endpoint.tls === 'terminate').map((x) => x.endpoint);
    // ACME certificates of names no endpoint lists any more are not served (kept a while: certificate-keeper.ts).
    const certs = await readServedCertificates(db, [...new Set(terminating.map((e) => e.appId))], options.keyVault, log, acmeNamesWanted(terminating));
    for (const { endpoint: e, appName } of eps) {
      // Private endpoints are never bound by an edge: only the API's tunnels reach them.
      if (e.access === 'private') continue;
      let terminate: Partial<EndpointConfig> = {};
      if (e.tls === 'terminate') {
        const own = certs.get(e.appId) ?? [];
        // Nothing to serve with: left out (the snapshot would be refused whole), and said once per build.
        // An ACME endpoint is served without one: it answers the CA's tls-alpn-01 validation.
        if (own.length === 0 && !(e.tlsOptions.acmeNames?.length)) {
          log.warn({ app: appName, port: e.port }, 'tls = "terminate" endpoint has no usable certificate; not served');
          continue;
        }
        terminate = terminateOptions(e, own);
      }
      const entry: EndpointConfig = {
        // The row's id is unique across orgs; the name is for people (logs, metrics labels).
        id: e.id,
        name: `${appName}/${e.port}`,
        revision: e.revision,
        app: appName,
        bind: bindAddresses(e.bindings, e.port, options.sharedAddresses),
        proxyProtocol: e.proxyProtocol,
        // The container itself, at its address on Pier's network and the endpoint's target port;
        // on a swarm, its node's address and the port its task is published on there.
        backends: (byProcess.get(`${e.appId}\0${e.process}`) ?? [])
          .filter((i) => i.address && (i.ports === null || i.ports[String(e.targetPort)] !== undefined))
          .map((i) => ({ id: i.id, address: i.address as string, port: i.ports?.[String(e.targetPort)] ?? e.targetPort }))
          .sort(byId),
        ...edgeOptions(e),
        ...terminate,
      };
      const list = out.get(e.appId);
      if (list) list.push(entry);
      else out.set(e.appId, [entry]);
    }
    return { byApp: out, certs };
  }

  /** Rebuilds the given apps' parts (all when null) and publishes a new version if any changed. */
  async function build(ids: string[] | null): Promise<void> {
    // Before reading: a snapshot's version is no earlier than its reads, so an edge that applied a
    // version >= T serves what the database held at T (api/certificates/edges-applied.ts).
    const startedAt = Date.now();
    const { byApp: fresh, certs } = await read(ids);
    let changed = false;
    const scope = ids ?? [...new Set([...parts.keys(), ...fresh.keys()])];
    for (const appId of scope) {
      const entries = (fresh.get(appId) ?? []).sort(byId);
      const used = new Set(entries.flatMap((e) => e.terminate?.certificates ?? []));
      const certificates = (certs.get(appId) ?? []).filter((c) => used.has(c.id));
      const print = JSON.stringify([entries, certificates.map((c) => c.id)]);
      if (parts.get(appId)?.print === print) continue;
      changed = true;
      if (entries.length) parts.set(appId, { entries, certificates, print });
      else parts.delete(appId);
    }
    const acmeChallenges = (await options.acmeChallenges?.()) ?? [];
    const challenges = JSON.stringify(acmeChallenges.map((c) => [c.app, c.name, c.token, c.cert]));
    if (challenges !== challengePrint) changed = true;
    challengePrint = challenges;
    // The first build always publishes, even an empty one: version 0 means "never built".
    if (!changed && snapshot.version > 0) return;
    const list: EndpointConfig[] = [];
    const certificates: CertificateConfig[] = [];
    for (const part of parts.values()) {
      list.push(...part.entries);
      certificates.push(...part.certificates);
    }
    list.sort(byId);
    certificates.sort(byId);
    // Versions only grow, also across restarts, so an edge never mistakes a new snapshot for an old one.
    snapshot = { version: Math.max(snapshot.version + 1, startedAt), endpoints: list, ...(certificates.length ? { certificates } : {}), ...(acmeChallenges.length ? { acmeChallenges } : {}) };
    log.info({ version: snapshot.version, endpoints: list.length, apps: ids?.length ?? 'all' }, 'edge config changed');
    for (const l of listeners) l(snapshot);
  }

  function schedule(delayMs = 0): void {
    if (scheduled || building || closed) return;
    scheduled = true;
    const run = () => {
      scheduled = false;
      void drain();
    };
    // setImmediate gathers the refreshes of one turn of the event loop into one build.
    if (delayMs > 0) setTimeout(run, delayMs).unref();
    else setImmediate(run);
  }

  /** Builds what is dirty, one build at a time, until nothing is. */
  async function drain(): Promise<void> {
    if (building || closed) return;
    const take = dirty;
    dirty = new Set();
    if (take !== 'all' && take.size === 0) return;
    const ids = take === 'all' || take.size > PARTIAL_LIMIT ? null : [...take];
    building = build(ids);
    try {
      await building;
      failures = 0;
    } catch (err) {
      failures++;
      // Nothing was lost: build it all again, after a pause (the database may be down).
      dirty = 'all';
      log.error({ err, attempt: failures }, 'edge config build failed; retrying');
      building = null;
      return schedule(Math.min(RETRY_MS * 2 ** (failures - 1), 10_000));
    }
    building = null;
    if (hasDirty()) schedule();
  }

  function hasDirty(): boolean {
    return dirty === 'all' || dirty.size > 0;
  }

  function markDirty(appId?: string): void {
    if (dirty === 'all') return;
    if (appId === undefined) dirty = 'all';
    else dirty.add(appId);
  }

  return {
    current: () => snapshot,
    refresh(appId) {
      markDirty(appId);
      schedule();
    },
    async rebuild() {
      // After any build in progress, so versions go out in order.
      while (building) await building.catch(() => undefined);
      const b = build(null);
      building = b.then(() => undefined);
      try {
        await b;
      } finally {
        building = null;
        if (hasDirty()) schedule();
      }
      return snapshot;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
    },
  };
}

function byId(a: { id: string }, b: { id: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
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
  if (e.tlsOptions.httpRedirect === true) out.httpRedirect = true;
  if (e.allow.length) out.allow = e.allow;
  if (e.deny.length) out.deny = e.deny;
  if (e.maxConnections !== null) out.maxConnections = e.maxConnections;
  if (e.maxConnectionsPerClient !== null) out.maxConnectionsPerClient = e.maxConnectionsPerClient;
  if (e.idleTimeoutMs !== null) out.idleTimeoutMs = e.idleTimeoutMs;
  return out;
}

function bindAddresses(bindings: string[], port: number, shared: string[]): BindAddress[] {
  return bindAddressesOf(bindings, shared).map((address) => ({ address, port }));
}
