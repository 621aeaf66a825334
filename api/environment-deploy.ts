// What a deploy runs in its environment: the manifest with its `[env.NAME]` (or `[env.preview]`)
// override applied, and for a preview the endpoint ports taken from the server's preview range
// (previews share the IPv4 with production, whose ports they must not take). A preview keeps its
// ports across deploys: the previous release's choice is reused while it is still free for it.
import { and, desc, eq, gte, lte, ne } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { portClaims, releases, type DeclaredConfig, type Environment } from '../db/schema/index.js';
import { applyOverride, overrideFor } from './environment-overrides.js';
import type { Manifest } from './manifest.js';
import { PierError } from './pier-error.js';

export interface PortRange {
  from: number;
  to: number;
}

/** The preview range when the server sets none (PIER_PREVIEW_PORTS). */
export const DEFAULT_PREVIEW_PORTS: PortRange = { from: 20000, to: 29999 };

export async function environmentManifest(
  tx: Db,
  appId: string | null,
  manifest: Manifest,
  env: Pick<Environment, 'name' | 'kind'>,
  range: PortRange,
): Promise<{ manifest: Manifest; declared: DeclaredConfig }> {
  const { overrides = {}, ...base } = manifest;
  const applied = overrideFor(overrides, env.name, env.kind === 'preview');
  const override = applied ? overrides[applied] : undefined;
  let effective: Manifest = applyOverride(base, override);
  const remappedPorts: Record<string, number> = {};
  if (env.kind === 'preview' && effective.endpoints.length) {
    const [previous] = appId ? await tx.select({ declared: releases.declared }).from(releases).where(eq(releases.appId, appId)).orderBy(desc(releases.version)).limit(1) : [];
    const before = previous?.declared?.remappedPorts ?? {};
    const taken = new Set(
      (await tx.select({ port: portClaims.port }).from(portClaims).where(and(gte(portClaims.port, range.from), lte(portClaims.port, range.to), appId ? ne(portClaims.appId, appId) : undefined))).map((r) => r.port),
    );
    const endpoints = [];
    for (const e of effective.endpoints) {
      // A port the override names is the user's choice; any other comes from the range.
      if (override?.ports?.[String(e.port)] !== undefined) {
        endpoints.push(e);
        continue;
      }
      const kept = before[String(e.port)];
      const port = kept !== undefined && !taken.has(kept) ? kept : free(range, taken, e.port);
      taken.add(port);
      remappedPorts[String(e.port)] = port;
      endpoints.push({ ...e, port });
    }
    effective = { ...effective, endpoints };
  }
  return { manifest: effective, declared: { environment: env.name, base, overrides, applied, remappedPorts } };
}

function free(range: PortRange, taken: Set<number>, wanted: number): number {
  for (let p = range.from; p <= range.to; p++) if (!taken.has(p)) return p;
  throw new PierError('E_PORT_RANGE_FULL', `no port is free in the preview range ${range.from}-${range.to} for the endpoint on port ${wanted}`, {
    status: 409,
    hint: 'destroy previews you no longer need (`pier env list`), or start the server with a larger PIER_PREVIEW_PORTS range',
  });
}
