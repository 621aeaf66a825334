// Keeps an app's endpoint rows equal to the endpoints of the release that serves, so the
// route table follows deploys and reverted rollouts alike, with the ports they claim
// (port-claims.ts) in the same transaction. Ids stay stable per port; a row's revision grows when
// what the edge applies to its listener changes, so an edge's report names the settings it is about.
import { and, eq, notInArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { endpoints } from '../db/schema/index.js';
import { newId } from './ids.js';
import type { EndpointSpec, Manifest } from './manifest.js';
import { writeClaims } from './port-claims.js';

export interface EndpointChange {
  port: number;
  change: 'added' | 'removed' | 'changed';
}

/**
 * Returns what changed, so callers can record it as events. Throws the database's violation when
 * another app holds a port (port-claims.ts: isClaimViolation, portInUse).
 */
export async function syncEndpoints(db: Db, appId: string, manifest: Manifest | null): Promise<EndpointChange[]> {
  const wanted = manifest?.endpoints ?? [];
  const ports = wanted.map((e) => e.port);
  const before = await db.select().from(endpoints).where(eq(endpoints.appId, appId));
  const changes: EndpointChange[] = before.filter((b) => !ports.includes(b.port)).map((b) => ({ port: b.port, change: 'removed' }));
  for (const e of wanted) {
    const old = before.find((b) => b.port === e.port);
    if (!old) changes.push({ port: e.port, change: 'added' });
    else if (JSON.stringify(comparable(old)) !== JSON.stringify(comparable({ ...old, ...rowValues(e) }))) changes.push({ port: e.port, change: 'changed' });
  }
  await db
    .delete(endpoints)
    .where(ports.length ? and(eq(endpoints.appId, appId), notInArray(endpoints.port, ports)) : eq(endpoints.appId, appId));
  for (const e of wanted) {
    const old = before.find((b) => b.port === e.port);
    const revision = old ? old.revision + (JSON.stringify(listenerSettings(old)) === JSON.stringify(listenerSettings({ ...old, ...rowValues(e) })) ? 0 : 1) : 1;
    const values = { ...rowValues(e), revision, updatedAt: new Date() };
    await db
      .insert(endpoints)
      .values({ id: newId('ep'), appId, port: e.port, ...values })
      .onConflictDoUpdate({ target: [endpoints.appId, endpoints.port], set: values });
  }
  await writeClaims(db, appId, await db.select().from(endpoints).where(eq(endpoints.appId, appId)));
  return changes;
}

/** The endpoint row's columns as the manifest sets them. */
function rowValues(e: EndpointSpec) {
  return {
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
  };
}

function comparable(row: ReturnType<typeof rowValues>) {
  const { process, targetPort, proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs } = row;
  return [process, targetPort, proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs];
}

/** What the edge applies to the endpoint's listeners (everything but where its backends are). */
function listenerSettings(row: ReturnType<typeof rowValues> & { bindings: string[] }) {
  const { proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings } = row;
  return [proxyProtocol, proxyProtocolTlvs, tls, sni, sniDefault, allow, deny, maxConnections, maxConnectionsPerClient, idleTimeoutMs, bindings];
}

export function describeEndpointChanges(changes: EndpointChange[]): string {
  return changes.map((c) => `:${c.port} ${c.change}`).join(', ');
}
