// Keeps each running instance on its private network with the names it should answer to: its
// ready instances (running, not draining, healthy or without a check) answer PROCESS.APP.internal
// and APP.internal when their group offers ports ([[private]]); the others stay on the network,
// nameless, so they can still reach their peers. It looks at every running instance at once when
// poked (a health change, a drain, a start), so an instance leaves the names within a check
// interval of failing or starting to drain, and on its interval (a slower safety round: what
// changed unannounced, another server's instances). Work is redone from current state; a failure
// is logged and tried again soon (`retryMs`): nothing here ends the process.
// The firewall (private-firewall.ts) is given every instance's private addresses and offered
// ports, so only those ports take connections from its peers: after the round has looked at every
// instance and before any name moves (a name never leads to an address the chain does not admit
// yet, and no instance is left out of a rewrite for not having been looked at yet), and again at
// the end of the round.
import type { Logger } from 'pino';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances, releases } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import { isPierError, PierError } from '../pier-error.js';
import type { NetworkEndpoint, Runtime } from '../runtime/runtime.js';
import { bridgeName } from './host-routes.js';
import type { FirewallInstance, PrivateFirewall } from './private-firewall.js';
import { planName, type NameAction } from './private-names-plan.js';
import { PRIVATE_LABELS, privateNetworkKey, privateNetworkName } from './private-network-key.js';
import type { PrivateNetworks } from './private-networks.js';
import { privateOffer, privatePorts } from './private-spec.js';

/** How long an instance found right is trusted before the engine is asked again. */
const RECHECK_MS = 30_000;
/** Between two rounds nothing asked for (pokes bring the changes this server makes). */
const INTERVAL_MS = 10_000;
/** After a round in which something failed. */
const RETRY_MS = 2_000;

export interface PrivateNamesOptions {
  db: Db;
  runtime: Runtime;
  networks: PrivateNetworks;
  /** Only instances placed on this node: the engine this server talks to. */
  nodeId: string;
  log: Logger;
  /** Enforces the offered ports; none: every port of an instance is open to its network. */
  firewall?: PrivateFirewall | undefined;
  /** Between full rounds (default 10 s); pokes come in between. */
  intervalMs?: number;
  /** After a round with a failure, the next one comes this soon (default 2 s, at most the interval). */
  retryMs?: number;
}

export interface PrivateNames {
  start(): void;
  /** Look now: an instance changed health, started or began to drain. */
  poke(): void;
  /** One round now; resolves when it is done (tests, and the server's first round). */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export function createPrivateNames(options: PrivateNamesOptions): PrivateNames {
  const { db, runtime, networks } = options;
  const log = options.log.child({ component: 'private-names' });
  let timer: NodeJS.Timeout | undefined;
  let retry: NodeJS.Timeout | undefined;
  /** Something in this round failed: the next comes after retryMs, not the whole interval. */
  let failedRound = false;
  let running: Promise<void> | null = null;
  let again = false;
  let closed = false;
  /** Instances last found answering the right names, by the facts that decided it. */
  const settled = new Map<string, { key: string; at: number }>();
  /** Each instance's private addresses and offered ports, by instance id, for the firewall. */
  const placed = new Map<string, { network: string; ipv4: string | null; ipv6: string | null; ports: { tcp: number[]; udp: number[] } }>();

  /** One instance whose place on its network changes this round. */
  interface Move {
    instance: string;
    containerId: string;
    network: string;
    action: Exclude<NameAction, { type: 'none' }>;
    ports: { tcp: number[]; udp: number[] };
    app: { orgId: string; environment?: string | undefined };
  }

  function place(instance: string, network: string, ports: Move['ports'], endpoint: NetworkEndpoint | undefined): void {
    if (endpoint) placed.set(instance, { network, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6, ports });
    else placed.delete(instance);
  }

  async function round(): Promise<void> {
    const rows = await db
      .select({ inst: instances, app: apps, manifest: releases.manifest })
      .from(instances)
      .innerJoin(apps, eq(apps.id, instances.appId))
      .innerJoin(releases, eq(releases.id, instances.releaseId))
      .where(and(eq(instances.nodeId, options.nodeId), inArray(instances.observedState, ['starting', 'running'])));
    const seen = new Set<string>();
    const moves: Move[] = [];
    // First every instance is looked at and placed where it is now; names move only after that.
    for (const { inst, app, manifest } of rows) {
      if (closed) return;
      if (!inst.containerId) continue;
      seen.add(inst.id);
      try {
        const network = await networks.networkFor(app);
        const facts = {
          app: app.name,
          process: inst.process,
          desired: inst.desiredState,
          draining: inst.drainUntil !== null,
          health: inst.health,
          offered: privateOffer(manifest as Manifest, inst.process) !== undefined,
        };
        // An instance whose facts have not changed since it was last found right needs no look at
        // the engine on every round (an inspect per instance every 2 s adds up with many apps);
        // it is looked at again after RECHECK_MS in case something outside Pier changed it.
        const key = JSON.stringify([inst.containerId, network.name, facts]);
        const known = settled.get(inst.id);
        if (known && known.key === key && Date.now() - known.at < RECHECK_MS) continue;
        const ports = privatePorts(manifest as Manifest, inst.process);
        const info = await runtime.inspect(inst.containerId);
        if (!info || info.state !== 'running') {
          placed.delete(inst.id);
          continue;
        }
        const endpoint = info.endpoints?.[network.name];
        place(inst.id, network.name, ports, endpoint);
        const action = planName(facts, endpoint);
        if (action.type === 'none') {
          settled.set(inst.id, { key, at: Date.now() });
          continue;
        }
        settled.delete(inst.id);
        moves.push({ instance: inst.id, containerId: info.id, network: network.name, action, ports, app });
      } catch (err) {
        failed(inst.id, app, err);
      }
    }
    for (const id of settled.keys()) if (!seen.has(id)) settled.delete(id);
    for (const id of placed.keys()) if (!seen.has(id)) placed.delete(id);
    // The firewall before any name moves, written from every instance of the round: a name must
    // not lead to an instance whose offered ports the chain does not let through yet (a new
    // network is closed until its instances are known), and a rewrite made halfway through the
    // round would leave out the instances not looked at yet (after a restart this process knows
    // none before its first round), refusing connections to names that still resolve.
    if (moves.length && options.firewall && !closed) await enforce(options.firewall);
    for (const move of moves) {
      if (closed) return;
      try {
        await apply(move);
      } catch (err) {
        failed(move.instance, move.app, err);
      }
    }
    if (options.firewall && !closed) await enforce(options.firewall);
  }

  function failed(instance: string, app: { orgId: string; environment?: string | undefined }, err: unknown): void {
    failedRound = true;
    // Removed behind Pier's back: made again on the next round.
    if (isPierError(err) && err.code === 'E_NETWORK_NOT_FOUND') networks.forget(privateNetworkName(privateNetworkKey(app).key));
    log.warn({ err, instance }, 'private names not updated; trying again next round');
  }

  /**
   * Gives an instance its names (or takes them away). Kept addresses are admitted by the chain
   * already (written above); new ones (a first join, or old ones taken meanwhile) are joined
   * nameless first, admitted, and only then given the names at those same addresses.
   */
  async function apply(move: Move): Promise<void> {
    const { containerId, network, action } = move;
    const firewall = options.firewall;
    if (action.type === 'rejoin') {
      await runtime.disconnectNetwork(containerId, network);
      // Same addresses when they are still free (they are: it just left them), else new ones.
      const kept = await runtime.connectNetwork(containerId, network, action).then(
        () => true,
        (err: unknown) => {
          log.warn({ err, instance: move.instance }, 'cannot keep the private addresses; joining with new ones');
          return false;
        },
      );
      if (kept) return done(move);
    }
    if (!firewall || action.aliases.length === 0) {
      await runtime.connectNetwork(containerId, network, { aliases: action.aliases });
      if (firewall) place(move.instance, network, move.ports, (await runtime.inspect(containerId))?.endpoints?.[network]);
      return done(move);
    }
    await runtime.connectNetwork(containerId, network, { aliases: [] });
    const endpoint = (await runtime.inspect(containerId))?.endpoints?.[network];
    if (!endpoint) throw new PierError('E_RUNTIME', `container ${containerId} joined ${network} but has no address there`);
    place(move.instance, network, move.ports, endpoint);
    if (closed) return;
    await enforce(firewall);
    await runtime.disconnectNetwork(containerId, network);
    await runtime.connectNetwork(containerId, network, { aliases: action.aliases, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6 });
    return done(move);
  }

  function done(move: Move): void {
    const aliases = move.action.aliases;
    log.info({ instance: move.instance, network: move.network, names: aliases, action: move.action.type }, aliases.length ? 'instance answers its private names' : 'instance answers no private name');
  }

  /** Every private network this server knows that is on the engine, with the instances on it. */
  async function enforce(firewall: PrivateFirewall): Promise<void> {
    const known = new Set((await networks.list()).map((n) => n.name));
    const bridges = new Map(
      (await runtime.listNetworks({ [PRIVATE_LABELS.private]: 'true' })).filter((n) => known.has(n.name)).map((n) => [n.name, { bridge: bridgeName(n.id) }]),
    );
    const entries: FirewallInstance[] = [];
    for (const p of placed.values()) {
      const network = bridges.get(p.network);
      if (network) entries.push({ network, ipv4: p.ipv4, ipv6: p.ipv6, ports: p.ports.tcp, udpPorts: p.ports.udp });
    }
    await firewall.apply([...bridges.values()], entries);
  }

  function sync(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    failedRound = false;
    running = round()
      .catch((err: unknown) => {
        failedRound = true;
        log.warn({ err }, 'private names round failed; trying again');
      })
      .finally(() => {
        running = null;
        if (again && !closed) {
          again = false;
          void sync();
        } else if (failedRound && !closed && timer !== undefined && retry === undefined) {
          retry = setTimeout(() => {
            retry = undefined;
            void sync();
          }, Math.min(options.retryMs ?? RETRY_MS, options.intervalMs ?? INTERVAL_MS));
          retry.unref();
        }
      });
    return running;
  }

  return {
    start() {
      timer = setInterval(() => void sync(), options.intervalMs ?? INTERVAL_MS);
      timer.unref();
      void sync();
    },
    poke() {
      if (!closed && timer !== undefined) void sync();
    },
    sync,
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      if (retry) clearTimeout(retry);
      await running;
    },
  };
}
