// Private networks, one per key (private-network-key.ts): allocated in the database (a free slot
// of the configured prefixes, so subnets are never given twice), made on the engine as a
// dual-stack bridge when missing, and found by name and reused after a restart. A slot whose
// subnets another installation on the same engine holds already is skipped. Owner: this module
// makes networks; private-names.ts decides which instances answer which names on them.
import type { Logger } from 'pino';
import { asc, eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { privateNetworks, type PrivateNetwork } from '../../db/schema/index.js';
import { isPierError, PierError } from '../pier-error.js';
import { LABELS, type NetworkInfo, type NetworkSpec, type Runtime } from '../runtime/runtime.js';
import { PRIVATE_LABELS, privateNetworkKey, privateNetworkName } from './private-network-key.js';
import { privateCapacity, privateSubnetsAt, type PrivatePrefixes } from './private-prefixes.js';

export interface PrivateNetworksOptions {
  db: Db;
  runtime: Runtime;
  prefixes: PrivatePrefixes;
  log: Logger;
  /** The installation's id, labelled on the networks it makes. */
  installationId?: string | undefined;
  /**
   * Called when a network was just made on the engine, before any instance joins it (the
   * firewall closes it: private-firewall.ts close()); returns why it could not, or null.
   */
  onCreated?: ((network: NetworkInfo) => Promise<string | null>) | undefined;
  /** The networks are IPv4 only (a swarm's overlays, swarm-overlays.ts): no warning for a missing IPv6 subnet. */
  ipv4Only?: boolean | undefined;
  /** Told once per network that could not be closed when made. */
  onProblem?: ((problem: string) => void) | undefined;
}

export interface PrivateNetworks {
  /** The network an app's instances join, allocated and made on the engine when missing. */
  networkFor(app: { orgId: string; environment?: string | undefined }): Promise<PrivateNetwork>;
  /** Forget what is known to exist on the engine (a network removed behind Pier's back). */
  forget(name: string): void;
  /** Makes sure every allocated network exists on the engine (at start: found by name, reused). */
  ensureAll(): Promise<PrivateNetwork[]>;
  /** Every allocated network. */
  list(): Promise<PrivateNetwork[]>;
}

/** Slots tried (taken on the engine by another installation) before giving up. */
const MAX_SKIPS = 64;

export function createPrivateNetworks(options: PrivateNetworksOptions): PrivateNetworks {
  const { db, runtime, prefixes, log } = options;
  /** Networks known to exist on the engine, by name, with their row. */
  const made = new Map<string, Promise<PrivateNetwork>>();

  function spec(row: PrivateNetwork): NetworkSpec {
    return {
      name: row.name,
      subnet: row.ipv4Subnet,
      ipv6Subnet: row.ipv6Subnet,
      labels: {
        [LABELS.managed]: 'true',
        [PRIVATE_LABELS.private]: 'true',
        [PRIVATE_LABELS.key]: row.key,
        // Which installation made it, as on containers: leftovers can be told apart and swept.
        ...(options.installationId ? { [LABELS.installation]: options.installationId } : {}),
      },
    };
  }

  async function onEngine(row: PrivateNetwork): Promise<void> {
    const info = await runtime.ensureNetwork(spec(row));
    if (info.created) log.info({ network: row.name, ipv6: row.ipv6Subnet, ipv4: row.ipv4Subnet }, 'private network created');
    if (!info.ipv6Subnet && !options.ipv4Only) log.warn({ network: row.name }, 'the private network exists without IPv6: remove it (docker network rm) when empty, and Pier makes it again dual-stack');
    const problem = info.created && options.onCreated ? await options.onCreated(info) : null;
    if (problem) {
      log.warn({ network: row.name, problem }, 'private network not closed when made');
      options.onProblem?.(problem);
    }
  }

  async function allocate(key: string, orgId: string): Promise<PrivateNetwork> {
    const skip = new Set<number>();
    for (let attempt = 0; attempt <= MAX_SKIPS; attempt++) {
      const [existing] = await db.select().from(privateNetworks).where(eq(privateNetworks.key, key));
      if (existing) return existing;
      const used = new Set((await db.select({ slot: privateNetworks.slot }).from(privateNetworks).orderBy(asc(privateNetworks.slot))).map((r) => r.slot));
      let slot = 0;
      while (used.has(slot) || skip.has(slot)) slot++;
      const subnets = privateSubnetsAt(prefixes, slot);
      if (!subnets) {
        throw new PierError('E_PRIVATE_NETWORKS_FULL', `no free private subnet is left: ${prefixes.ipv6} and ${prefixes.ipv4} hold ${privateCapacity(prefixes)} networks`, {
          status: 503,
          hint: 'start pier server with wider prefixes (--private-ipv6 a /48 or wider, --private-ipv4 a /16 or wider), or remove unused private networks',
        });
      }
      const [row] = await db
        .insert(privateNetworks)
        .values({ key, orgId, name: privateNetworkName(key), slot, ipv6Subnet: subnets.ipv6, ipv4Subnet: subnets.ipv4 })
        .onConflictDoNothing()
        .returning();
      if (!row) continue; // another server took the key or the slot: look again
      try {
        await onEngine(row);
        return row;
      } catch (err) {
        // Its subnets are used on the engine (another installation): give the slot up, try the next.
        if (!isPierError(err) || err.code !== 'E_NETWORK_SUBNET_CONFLICT') throw err;
        await db.delete(privateNetworks).where(eq(privateNetworks.key, key));
        skip.add(slot);
        log.info({ slot, ipv4: subnets.ipv4, ipv6: subnets.ipv6 }, 'private subnet taken on the engine; trying the next');
      }
    }
    throw new PierError('E_PRIVATE_NETWORKS_FULL', `the engine already uses ${MAX_SKIPS} private subnets of ${prefixes.ipv6} / ${prefixes.ipv4} that this server does not know`, {
      status: 503,
      hint: 'another Pier installation shares this engine: give this one other prefixes (--private-ipv6, --private-ipv4), or remove the networks left behind (docker network ls --filter label=dev.pier.private)',
    });
  }

  async function ensure(key: string, orgId: string): Promise<PrivateNetwork> {
    const [existing] = await db.select().from(privateNetworks).where(eq(privateNetworks.key, key));
    if (!existing) return allocate(key, orgId);
    await onEngine(existing);
    return existing;
  }

  return {
    networkFor(app) {
      const { key, orgId } = privateNetworkKey(app);
      const name = privateNetworkName(key);
      let p = made.get(name);
      if (!p) {
        made.set(name, (p = ensure(key, orgId)));
        // A failure is not remembered: the next start tries again.
        p.catch(() => made.delete(name));
      }
      return p;
    },
    forget(name) {
      made.delete(name);
    },
    async ensureAll() {
      const rows = await db.select().from(privateNetworks);
      for (const row of rows) {
        const p = onEngine(row).then(() => row);
        made.set(row.name, p);
        p.catch(() => made.delete(row.name));
        await p;
      }
      return rows;
    },
    list: () => db.select().from(privateNetworks),
  };
}
