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
// the end of the round. An instance the engine cannot be asked about stays in the chain at the
// addresses last found (kept in its row, so a restarted server has them before its first look):
// a failed inspect must not close its offered ports until a later round; it is logged and
// recorded once (`instance.private-inspect-failed`) and tried again every round.
import type { Logger } from 'pino';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances, releases, type Instance } from '../../db/schema/index.js';
import type { EventLog } from '../event-log.js';
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
  intervalMs?: number | undefined;
  /** After a round with a failure, the next one comes this soon (default 2 s, at most the interval). */
  retryMs?: number | undefined;
  /** Where an instance the engine cannot be asked about is recorded (once until it can again). */
  events?: EventLog | undefined;
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
  /** Instances whose last look failed, already logged and recorded. */
  const failing = new Set<string>();

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
    /** Instances not looked at this round: their place is what was known before. */
    const unknown = new Set<string>();
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
        lookedAt(inst.id);
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
        unknown.add(inst.id);
        await lookFailed(inst, app, manifest as Manifest, err);
      }
    }
    for (const id of settled.keys()) if (!seen.has(id)) settled.delete(id);
    for (const id of placed.keys()) if (!seen.has(id)) placed.delete(id);
    for (const id of failing) if (!seen.has(id)) failing.delete(id);
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
    await remember(rows.map((r) => r.inst).filter((i) => seen.has(i.id) && !unknown.has(i.id)));
  }

  /**
   * The engine could not be asked about an instance (or its network is not known): it keeps its
   * place in the chain, the one this process last found, else the one its row keeps from the
   * server before a restart (when it is the same container), so its offered ports stay open to
   * its peers; an instance never found on the network has none and stays out.
   */
  async function lookFailed(inst: Instance, app: Move['app'] & { id: string }, manifest: Manifest, err: unknown): Promise<void> {
    failedRound = true;
    forgetIfRemoved(app, err);
    settled.delete(inst.id);
    const stored = inst.privateEndpoint;
    if (!placed.has(inst.id) && stored && stored.container === inst.containerId) {
      placed.set(inst.id, { network: stored.network, ipv4: stored.ipv4, ipv6: stored.ipv6, ports: privatePorts(manifest, inst.process) });
    }
    const kept = placed.get(inst.id);
    if (failing.has(inst.id)) {
      log.debug({ err, instance: inst.id }, 'instance still not looked at on its private network');
      return;
    }
    const why = err instanceof Error ? err.message : String(err);
    const where = kept ? `its last known addresses (${[kept.ipv4, kept.ipv6].filter(Boolean).join(', ')}) stay admitted on its offered ports` : 'no address of it on its private network is known, so its offered ports stay closed to its peers';
    log.warn({ err, instance: inst.id, kept: kept ? { network: kept.network, ipv4: kept.ipv4, ipv6: kept.ipv6 } : null }, 'instance not looked at on its private network; trying again next round');
    try {
      await options.events?.record({
        orgId: app.orgId,
        appId: app.id,
        instanceId: inst.id,
        type: 'instance.private-inspect-failed',
        reason: isPierError(err) ? err.code : 'runtime-error',
        message: `${inst.id} could not be looked at on its private network (${why}): ${where}; tried again every round`,
        data: { error: why, network: kept?.network ?? null, ipv4: kept?.ipv4 ?? null, ipv6: kept?.ipv6 ?? null },
      });
      failing.add(inst.id);
    } catch (recordErr) {
      log.warn({ err: recordErr, instance: inst.id }, 'event not recorded; trying again next round');
    }
  }

  function lookedAt(instance: string): void {
    if (failing.delete(instance)) log.info({ instance }, 'instance looked at again on its private network');
  }

  /** Keeps each instance's place in its row, when it changed, for a server started after this one. */
  async function remember(looked: Instance[]): Promise<void> {
    for (const inst of looked) {
      if (closed) return;
      if (inst.containerId === null) continue;
      const p = placed.get(inst.id);
      const now = p ? { container: inst.containerId, network: p.network, ipv4: p.ipv4, ipv6: p.ipv6 } : null;
      const was = inst.privateEndpoint;
      if (now === was || (now && was && now.container === was.container && now.network === was.network && now.ipv4 === was.ipv4 && now.ipv6 === was.ipv6)) continue;
      try {
        await db.update(instances).set({ privateEndpoint: now }).where(eq(instances.id, inst.id));
      } catch (err) {
        log.warn({ err, instance: inst.id }, 'private addresses not kept in the database; trying again next round');
      }
    }
  }

  function failed(instance: string, app: Move['app'], err: unknown): void {
    failedRound = true;
    forgetIfRemoved(app, err);
    log.warn({ err, instance }, 'private names not updated; trying again next round');
  }

  function forgetIfRemoved(app: Move['app'], err: unknown): void {
    // Removed behind Pier's back: made again on the next round.
    if (isPierError(err) && err.code === 'E_NETWORK_NOT_FOUND') networks.forget(privateNetworkName(privateNetworkKey(app).key));
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
