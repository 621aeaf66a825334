// What a deploy runs in its environment: the manifest with its `[env.NAME]` (or `[env.preview]`)
// override applied, and for a preview the endpoint ports taken from the server's preview range
// (previews share the IPv4 with production, whose ports they must not take). A preview keeps its
// ports across deploys: the previous release's choice is reused while it is still free for it.
// On an address of its own (its IPv6 from the pool, a dedicated IPv4) no one else holds any port,
// so there a preview keeps the manifest's port: an endpoint served on both is split in two, the
// manifest's port on its own address and a range port on the shared one.
import { and, desc, eq, gte, lte, ne } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { portClaims, releases, type DeclaredConfig, type Environment } from '../db/schema/index.js';
import type { PortRange } from './environment-config.js';
import { applyOverride, overrideFor } from './environment-overrides.js';
import type { EndpointSpec, Manifest } from './manifest.js';
import type { IpFamily } from '../db/schema/index.js';
import { PierError } from './pier-error.js';

export async function environmentManifest(
  tx: Db,
  appId: string | null,
  manifest: Manifest,
  env: Pick<Environment, 'name' | 'kind'>,
  range: PortRange,
  /** The app's own addresses now (api/ip-service.ts addressesOf): a preview keeps its ports there. */
  own: Partial<Record<IpFamily, string>> = {},
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
    const endpoints: EndpointSpec[] = [];
    const onShared: EndpointSpec[] = [];
    // The ports the manifest keeps (own addresses, overrides) are the app's: no range port may be one of them.
    const sides = effective.endpoints.map((e) => ({ e, ...familiesOf(e, own) }));
    for (const { e, own: mine } of sides) if (mine.length || override?.ports?.[String(e.port)] !== undefined) taken.add(e.port);
    for (const { e, own: mine, shared } of sides) {
      // A port the override names is the user's choice; so is an endpoint served only on the app's own addresses.
      if (override?.ports?.[String(e.port)] !== undefined || shared.length === 0) {
        endpoints.push(e);
        continue;
      }
      const kept = before[String(e.port)];
      const port = kept !== undefined && !taken.has(kept) ? kept : free(range, taken, e.port);
      taken.add(port);
      remappedPorts[String(e.port)] = port;
      if (mine.length === 0) {
        endpoints.push({ ...e, port });
        continue;
      }
      // Both: the manifest's port on its own addresses (in the manifest's place, so env diff lines
      // endpoints up by position), the range port on the shared ones (after all of them).
      endpoints.push({ ...e, ...none(shared) });
      onShared.push({ ...e, ...none(mine), port });
    }
    endpoints.push(...onShared);
    effective = { ...effective, endpoints };
  }
  return { manifest: effective, declared: { environment: env.name, base, overrides, applied, remappedPorts } };
}

/**
 * Which families an endpoint is served on from the app's own address and which from the shared
 * one, as endpoint-bindings.ts resolves them ("dedicated" without an address counts as own: the
 * deploy is refused for it anyway). A private endpoint is bound nowhere: its port is a name, kept.
 */
function familiesOf(e: EndpointSpec, own: Partial<Record<IpFamily, string>>): { own: IpFamily[]; shared: IpFamily[] } {
  const out = { own: [] as IpFamily[], shared: [] as IpFamily[] };
  if (e.access === 'private') return out;
  for (const family of ['ipv4', 'ipv6'] as const) {
    const choice = e[family] ?? 'auto';
    if (choice === 'none') continue;
    if (choice === 'dedicated' || (choice === 'auto' && own[family])) out.own.push(family);
    else out.shared.push(family);
  }
  return out;
}

/** The endpoint fields that leave these families out. */
function none(families: IpFamily[]): Partial<Pick<EndpointSpec, 'ipv4' | 'ipv6'>> {
  return Object.fromEntries(families.map((f) => [f, 'none'])) as Partial<Pick<EndpointSpec, 'ipv4' | 'ipv6'>>;
}

function free(range: PortRange, taken: Set<number>, wanted: number): number {
  for (let p = range.from; p <= range.to; p++) if (!taken.has(p)) return p;
  throw new PierError('E_PORT_RANGE_FULL', `no port is free in the preview range ${range.from}-${range.to} for the endpoint on port ${wanted}`, {
    status: 409,
    hint: 'destroy previews you no longer need (`pier env list`), or start the server with a larger PIER_PREVIEW_PORTS range',
  });
}
