// Private names on a swarm that follow Pier's checks, with AAAA records: every round (and when
// poked: a health change, a drain, a start) the API server works out, for each environment's
// overlay, the names each ready instance answers (wantedNames: running, not draining, healthy or
// without a check, its group offering ports) with its IPv4 address on the overlay and the IPv6
// address its node's agent gave it (agent/task-firewall.ts: the environment's /64 with the IPv4 in
// the last 32 bits), and pushes the whole of it to every node agent, which writes it into the
// hosts file of each task of its node on that overlay (agent/task-names.ts). A task is named by
// IPv6 only once its agent has said it has the address (each agent answers a push with its
// tasks' addresses): a task on a node without an agent, or made before the label, has none, and
// a client must not be sent there first. Pushed when it changes, and every
// REPUSH_MS anyway (an agent that restarted has nothing). An agent that cannot be reached is
// logged once until it can again; nothing here ends the process.
import { and, eq, inArray } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, instances, releases } from '../../db/schema/index.js';
import type { NamesHost } from '../agent/task-names.js';
import type { Manifest } from '../manifest.js';
import { wantedNames } from '../private/private-names-plan.js';
import { privateOffer } from '../private/private-spec.js';
import type { PrivateNetworks } from '../private/private-networks.js';
import type { Runtime } from '../runtime/runtime.js';
import { swarmOverlayName } from '../runtime/swarm-overlays.js';
import type { AgentRoots } from '../volumes/agent-roots.js';

const INTERVAL_MS = 2_000;
const REPUSH_MS = 30_000;

export interface SwarmNamesOptions {
  db: Db;
  runtime: Runtime;
  networks: PrivateNetworks;
  agents: AgentRoots;
  log: Logger;
  intervalMs?: number | undefined;
}

export interface SwarmNames {
  start(): void;
  poke(): void;
  /** One round now (tests). */
  round(): Promise<void>;
  close(): Promise<void>;
}

export interface NamesPush {
  networks: { subnet: string; hosts: NamesHost[] }[];
}

/** Adds `names` to `address` in `hosts` (an address may answer several groups' names only through one instance, but stays unique). Pure. */
function add(hosts: Map<string, Set<string>>, address: string, names: string[]): void {
  const set = hosts.get(address) ?? new Set<string>();
  for (const n of names) set.add(n);
  hosts.set(address, set);
}

export function createSwarmNames(options: SwarmNamesOptions): SwarmNames {
  const { db, runtime, networks, agents, log } = options;
  /** A task's IPv4 address on its overlay, by container id and overlay (it does not change for a container's life). */
  const addresses = new Map<string, string>();
  /** The IPv6 address each task has, as its node's agent said in its last answer, by container id. */
  const taskV6 = new Map<string, string>();
  let lastBody = '';
  let lastPushAt = 0;
  const failing = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  /** The last round's failure, said once until a round succeeds (the database or the manager down: every 2 s otherwise). */
  let lastFailure: string | null = null;

  async function compute(): Promise<NamesPush> {
    const rows = await db
      .select({ inst: instances, app: apps, manifest: releases.manifest })
      .from(instances)
      .innerJoin(apps, eq(apps.id, instances.appId))
      .innerJoin(releases, eq(releases.id, instances.releaseId))
      .where(and(inArray(instances.observedState, ['running'])));
    const bySubnet = new Map<string, Map<string, Set<string>>>();
    // Every overlay is pushed, empty or not: the names of an environment whose last ready instance went leave too.
    for (const n of await networks.list()) bySubnet.set(n.ipv4Subnet, new Map());
    const alive = new Set<string>();
    for (const { inst, app, manifest } of rows) {
      if (!inst.containerId || !privateOffer(manifest as Manifest, inst.process)) continue;
      const names = wantedNames({ app: app.name, process: inst.process, desired: inst.desiredState, draining: inst.drainUntil !== null, health: inst.health, offered: true });
      if (names.length === 0) continue;
      const network = await networks.networkFor(app);
      const overlay = swarmOverlayName(network.name);
      const key = `${inst.containerId} ${overlay}`;
      alive.add(key);
      let ipv4 = addresses.get(key);
      if (!ipv4) {
        const info = await runtime.inspect(inst.containerId).catch(() => null);
        ipv4 = info?.endpoints?.[overlay]?.ipv4 ?? info?.endpoints?.[network.name]?.ipv4 ?? undefined;
        if (!ipv4) continue;
        addresses.set(key, ipv4);
      }
      const hosts = bySubnet.get(network.ipv4Subnet) ?? new Map<string, Set<string>>();
      bySubnet.set(network.ipv4Subnet, hosts);
      add(hosts, ipv4, names);
      const v6 = taskV6.get(inst.containerId);
      if (v6) add(hosts, v6, names);
    }
    for (const key of addresses.keys()) if (!alive.has(key)) addresses.delete(key);
    // A task's address is kept while it runs (unready or draining for now), dropped once it is gone.
    const containers = new Set(rows.map((r) => r.inst.containerId));
    for (const id of taskV6.keys()) if (!containers.has(id)) taskV6.delete(id);
    return {
      networks: [...bySubnet].map(([subnet, hosts]) => ({ subnet, hosts: [...hosts].map(([address, names]) => ({ address, names: [...names].sort() })).sort((a, b) => a.address.localeCompare(b.address)) })),
    };
  }

  async function round(): Promise<void> {
    // A task's IPv6 address learnt from the agents' answers goes into the names at once, not a round later.
    if (await push()) await push();
  }

  /** Pushes the names when they changed (or are due); true when an agent told of a new IPv6 address. */
  async function push(): Promise<boolean> {
    const body = await compute();
    const text = JSON.stringify(body);
    if (text === lastBody && Date.now() - lastPushAt < REPUSH_MS && failing.size === 0) return false;
    const results = await agents.pushNames(body);
    let ok = true;
    let learned = false;
    for (const [address, result] of Object.entries(results)) {
      if (typeof result !== 'string') {
        if (failing.delete(address)) log.info({ node: address }, 'private names pushed to the node agent again');
        for (const [id, v6] of Object.entries(result.ipv6)) {
          if (taskV6.get(id) === v6) continue;
          taskV6.set(id, v6);
          learned = true;
        }
        continue;
      }
      ok = false;
      if (!failing.has(address)) log.warn({ node: address, err: result }, 'cannot push the private names to the node agent; trying again');
      failing.add(address);
    }
    if (text !== lastBody) log.debug({ networks: body.networks.length, addresses: body.networks.reduce((n, x) => n + x.hosts.length, 0) }, 'private names pushed to the node agents');
    lastBody = text;
    if (ok) lastPushAt = Date.now();
    return learned && !closed;
  }

  function run(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = round()
      .then(() => {
        if (lastFailure !== null) log.info('private names of the swarm worked out again');
        lastFailure = null;
      })
      .catch((err: unknown) => {
        const message = (err as Error).message ?? String(err);
        if (message !== lastFailure) log.warn({ err }, 'private names of the swarm not worked out; trying again');
        lastFailure = message;
      })
      .finally(() => {
        running = null;
        if (again && !closed) {
          again = false;
          void run();
        }
      });
    return running;
  }

  return {
    start() {
      if (timer || closed) return;
      timer = setInterval(() => void run(), options.intervalMs ?? INTERVAL_MS);
      timer.unref();
      void run();
    },
    poke() {
      if (timer && !closed) void run();
    },
    round: run,
    async close() {
      closed = true;
      clearInterval(timer);
      await running;
    },
  };
}
