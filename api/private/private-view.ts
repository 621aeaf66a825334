// What `pier describe app` says of an app's private networking: its network and subnets, the
// names it offers with their ports, and each running instance's private addresses and the names
// it answers to now (read from the engine: the names follow readiness, so the database alone
// would not say).
import { eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { privateNetworks, type Instance } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import type { Runtime } from '../runtime/runtime.js';
import { swarmOverlayName } from '../runtime/swarm-overlays.js';
import { privateNetworkKey } from './private-network-key.js';
import { PRIVATE_DOMAIN, privateNames } from './private-spec.js';

export interface PrivateView {
  network: { name: string; ipv6Subnet: string; ipv4Subnet: string } | null;
  /** APP.internal: every ready instance of the groups below. */
  name: string | null;
  offers: { process: string; name: string; ports: number[]; protocol: 'tcp' | 'udp' }[];
  instances: { id: string; process: string; ipv6: string | null; ipv4: string | null; names: string[] }[];
}

/**
 * `taskIpv6`: on a swarm, the IPv6 address each task got from its node's agent, by container id
 * (Docker knows none: task-firewall.ts gives it).
 */
export async function describePrivate(db: Db, runtime: Runtime, app: { name: string; orgId: string }, manifest: Manifest | undefined, rows: Instance[], taskIpv6: Record<string, string> = {}): Promise<PrivateView> {
  const [network] = await db.select().from(privateNetworks).where(eq(privateNetworks.key, privateNetworkKey(app).key));
  const offers = (manifest?.private ?? []).map((p) => ({ process: p.process, name: privateNames(app.name, p.process)[0] as string, ports: p.ports, protocol: p.protocol ?? 'tcp' }));
  const instances: PrivateView['instances'] = [];
  for (const row of rows) {
    if (!network || !row.containerId || row.observedState !== 'running') continue;
    const info = await runtime.inspect(row.containerId).catch(() => null);
    // On a swarm a preview's overlay has its dot replaced (swarm-overlays.ts).
    const endpoint = info?.endpoints?.[network.name] ?? info?.endpoints?.[swarmOverlayName(network.name)];
    if (endpoint) instances.push({ id: row.id, process: row.process, ipv6: endpoint.ipv6 ?? taskIpv6[row.containerId] ?? null, ipv4: endpoint.ipv4, names: endpoint.aliases });
  }
  return {
    network: network ? { name: network.name, ipv6Subnet: network.ipv6Subnet, ipv4Subnet: network.ipv4Subnet } : null,
    name: offers.length ? `${app.name}.${PRIVATE_DOMAIN}` : null,
    offers,
    instances,
  };
}
