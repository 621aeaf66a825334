// Keeps an app's endpoint rows equal to the endpoints of the release that serves, so the
// route table follows deploys and reverted rollouts alike, with the ports they claim
// (port-claims.ts) in the same transaction. Ids stay stable per port; a row's revision grows when
// what the edge applies to its listener changes, so an edge's report names the settings it is about.
import { and, eq, notInArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { endpoints } from '../db/schema/index.js';
import { newId } from './ids.js';
import { notAllocated, resolveBindings } from './endpoint-bindings.js';
import { addressesOf } from './ip-service.js';
import type { EndpointSpec, Manifest } from './manifest.js';
import { writeClaims } from './port-claims.js';
import { requireCertificate } from './certificates/require-certificate.js';

export interface EndpointChange {
  port: number;
  change: 'added' | 'removed' | 'changed';
}

export interface SyncOptions {
  /**
   * A deploy names its app: an endpoint asking for a dedicated address the app lacks refuses it
   * (E_IP_NOT_ALLOCATED). Without it (a revert), that family is left out, and an endpoint left
   * with no address is not restored.
   */
  refuseMissingFor?: string;
  /** The app has never been deployed (it cannot have an address yet): the refusal says so. */
  newApp?: boolean;
}

/**
 * Returns what changed, so callers can record it as events. Throws the database's violation when
 * another app holds a port (port-claims.ts: isClaimViolation, portInUse). The endpoints bind the
 * app's dedicated addresses as they are now (endpoint-bindings.ts), read under a lock that keeps
 * them from being released until this transaction ends.
 */
export async function syncEndpoints(db: Db, appId: string, manifest: Manifest | null, options: SyncOptions = {}): Promise<EndpointChange[]> {
  const own = manifest?.endpoints.length ? await addressesOf(db, appId) : {};
  // A private endpoint binds no address (the edge leaves it out): nothing to resolve or to lack.
  const resolved = (manifest?.endpoints ?? []).map((e) => (e.access === 'private' ? { e, bindings: [] as string[], problems: [] } : { e, ...resolveBindings(e, own) }));
  const problems = resolved.flatMap((r) => r.problems);
  if (problems.length && options.refuseMissingFor !== undefined) throw notAllocated(options.refuseMissingFor, problems, options.newApp === true);
  if (options.refuseMissingFor !== undefined) await requireCertificate(db, appId, options.refuseMissingFor, manifest?.endpoints ?? []);
  const bindingsOf = new Map(resolved.map((r) => [r.e.port, r.bindings]));
  const wanted = resolved.filter((r) => r.problems.length === 0 || r.bindings.length > 0).map((r) => r.e);
  const ports = wanted.map((e) => e.port);
  const before = await db.select().from(endpoints).where(eq(endpoints.appId, appId));
  const changes: EndpointChange[] = before.filter((b) => !ports.includes(b.port)).map((b) => ({ port: b.port, change: 'removed' }));
  for (const e of wanted) {
    const old = before.find((b) => b.port === e.port);
    if (!old) changes.push({ port: e.port, change: 'added' });
    else if (JSON.stringify(comparable(old)) !== JSON.stringify(comparable({ ...old, ...rowValues(e, bindingsOf.get(e.port) ?? []) }))) changes.push({ port: e.port, change: 'changed' });
  }
  await db
    .delete(endpoints)
    .where(ports.length ? and(eq(endpoints.appId, appId), notInArray(endpoints.port, ports)) : eq(endpoints.appId, appId));
  for (const e of wanted) {
    const old = before.find((b) => b.port === e.port);
    const row = rowValues(e, bindingsOf.get(e.port) ?? []);
    const revision = old ? old.revision + (JSON.stringify(listenerSettings(old)) === JSON.stringify(listenerSettings({ ...old, ...row })) ? 0 : 1) : 1;
    const values = { ...row, revision, updatedAt: new Date() };
    await db
      .insert(endpoints)
      .values({ id: newId('ep'), appId, port: e.port, ...values })
      .onConflictDoUpdate({ target: [endpoints.appId, endpoints.port], set: values });
  }
  await writeClaims(db, appId, await db.select().from(endpoints).where(eq(endpoints.appId, appId)));
  return changes;
}

/** The endpoint row's columns as the manifest sets them, with the addresses it binds. */
function rowValues(e: EndpointSpec, bindings: string[]) {
  return {
    bindings,
    process: e.process,
    targetPort: e.target,
    proxyProtocol: e.proxy_protocol,
    proxyProtocolTlvs: e.proxy_protocol_tlvs,
    tls: e.tls,
    sni: e.sni,
    sniDefault: e.sni_default,
    allow: e.allow,
    deny: e.deny,
    maxConnections: e.max_connections ?? null,
    maxConnectionsPerClient: e.max_connections_per_client ?? null,
    idleTimeoutMs: e.idle_timeout ?? null,
    access: e.access ?? 'public',
    tlsOptions: tlsOptionsOf(e),
  };
}

/** The tls = "terminate" and http_redirect settings, only those set. */
function tlsOptionsOf(e: EndpointSpec): { alpn?: string[]; clientCa?: string; httpRedirect?: boolean; acmeNames?: string[] } {
  return {
    ...(e.certificates === 'acme' && e.hostnames !== undefined ? { acmeNames: e.hostnames } : {}),
    ...(e.alpn === undefined ? {} : { alpn: e.alpn }),
    ...(e.client_ca === undefined ? {} : { clientCa: e.client_ca }),
    ...(e.http_redirect === true ? { httpRedirect: true } : {}),
  };
}

function comparable(row: ReturnType<typeof rowValues>) {
  const { process, targetPort, proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings, access, tlsOptions } = row;
  return [process, targetPort, proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings, access, tlsOptions];
}

/** What the edge applies to the endpoint's listeners (everything but where its backends are). */
function listenerSettings(row: ReturnType<typeof rowValues>) {
  const { proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings, access, tlsOptions } = row;
  return [proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings, access, tlsOptions];
}

export function describeEndpointChanges(changes: EndpointChange[]): string {
  return changes.map((c) => `:${c.port} ${c.change}`).join(', ');
}
