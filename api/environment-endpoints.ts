// Where an environment's apps are served: each endpoint's public port and the `address:port` pairs
// (the edge's shared addresses, or the app's own) with their family, and the port the manifest
// names beside it.
import { and, asc, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, endpoints, releases, type DeclaredConfig } from '../db/schema/index.js';
import { bindAddressesOf } from './endpoint-bindings.js';
import type { EnvironmentEndpointView } from './environment-views.js';

export async function environmentEndpoints(db: Db, orgId: string, environment: string, shared: string[], appIds?: string[]): Promise<EnvironmentEndpointView[]> {
  const rows = await db
    .select({ e: endpoints, app: apps.name, declared: releases.declared })
    .from(endpoints)
    .innerJoin(apps, eq(apps.id, endpoints.appId))
    .leftJoin(releases, eq(releases.id, apps.currentReleaseId))
    .where(and(eq(apps.orgId, orgId), eq(apps.environment, environment), isNull(apps.deletedAt), appIds ? inArray(apps.id, appIds) : undefined))
    .orderBy(asc(apps.name), asc(endpoints.port));
  const sharedSet = new Set(shared);
  return rows.map(({ e, app, declared }) => {
    const bind = (e.access === 'private' ? [] : bindAddressesOf(e.bindings, shared)).map((address) => ({
      address,
      port: e.port,
      family: address.includes(':') ? ('ipv6' as const) : ('ipv4' as const),
      kind: sharedSet.has(address) && !e.bindings.includes(address) ? ('shared' as const) : ('dedicated' as const),
    }));
    return {
      app,
      process: e.process,
      port: e.port,
      manifestPort: manifestPortOf(e.port, declared),
      target: e.targetPort,
      addresses: bind.map((b) => (b.family === 'ipv6' ? `[${b.address}]:${e.port}` : `${b.address}:${e.port}`)),
      bind,
    };
  });
}

function manifestPortOf(port: number, declared: DeclaredConfig | null): number {
  if (!declared) return port;
  for (const [from, to] of Object.entries(declared.remappedPorts)) if (to === port) return Number(from);
  const override = declared.applied ? (declared.overrides[declared.applied] as { ports?: Record<string, number> } | undefined) : undefined;
  for (const [from, to] of Object.entries(override?.ports ?? {})) if (to === port) return Number(from);
  return port;
}
