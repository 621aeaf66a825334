// Where an environment's apps are served: each endpoint's public port and the `address:port` pairs
// (the edge's shared addresses, or the app's own), with the port the manifest names beside it.
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
  return rows.map(({ e, app, declared }) => ({
    app,
    process: e.process,
    port: e.port,
    manifestPort: manifestPortOf(e.port, declared),
    target: e.targetPort,
    addresses: bindAddressesOf(e.bindings, shared).map((a) => (a.includes(':') ? `[${a}]:${e.port}` : `${a}:${e.port}`)),
  }));
}

function manifestPortOf(port: number, declared: DeclaredConfig | null): number {
  if (!declared) return port;
  for (const [from, to] of Object.entries(declared.remappedPorts)) if (to === port) return Number(from);
  const override = declared.applied ? (declared.overrides[declared.applied] as { ports?: Record<string, number> } | undefined) : undefined;
  for (const [from, to] of Object.entries(override?.ports ?? {})) if (to === port) return Number(from);
  return port;
}
