// The storage roots of a swarm's nodes, one per node agent (`pier server --node-agent ADDRESS=URL`,
// api/agent/node-agents.ts): the root of the node at ADDRESS is named `node:ADDRESS` in volume and
// snapshot rows, and its driver is a RemoteVolumeDriver to that node's agent. A driver is made once
// the agent has answered (it says its root and kind): `connect` asks it, and the server asks every
// agent at start; until an agent answered, a call on its root is E_AGENT_UNREACHABLE and asks again.
// A node with no agent configured is E_NODE_AGENT_MISSING, naming the node and the flag to set.
import type { Logger } from 'pino';
import type { NodeAgentsSetting } from '../agent/node-agents.js';
import { createAgentTransport } from '../agent/agent-transport.js';
import type { AgentRoot } from '../agent/agent-protocol.js';
import { PierError } from '../pier-error.js';
import { connectRemoteVolumeDriver } from './drivers/remote-driver.js';
import type { VolumeDriver } from './volume-driver.js';

const PREFIX = 'node:';

/** The root name of a node's agent root. */
export function nodeRootName(address: string): string {
  return `${PREFIX}${address}`;
}

/** The node address of a root named `node:ADDRESS`, or null for a root of this machine. */
export function nodeRootAddress(root: string): string | null {
  return root.startsWith(PREFIX) ? root.slice(PREFIX.length) : null;
}

export interface AgentRoots {
  /** Node addresses with an agent configured, in the order given. */
  addresses(): string[];
  has(address: string): boolean;
  /** The node's driver, asking its agent first when it has not answered yet. */
  connect(address: string): Promise<VolumeDriver>;
  /** The node's driver when its agent has answered; else a coded error (and a new try in the background). */
  get(address: string): VolumeDriver;
  /** Asks every agent once (at start): one that does not answer is logged, and asked again when used. */
  connectAll(): Promise<void>;
  /**
   * What each agent says now about the offered ports of its node's tasks (GET /v1/root, 2 s at
   * most each): its count and last problem, null when it does not watch its engine, 'unreachable'.
   */
  offeredPorts(): Promise<Record<string, NonNullable<AgentRoot['offeredPorts']> | null | 'unreachable'>>;
  /**
   * Gives every agent the private names of every overlay (PUT /v1/private-names, 5 s at most
   * each; scheduler/swarm-names.ts): where it took them (or runs without --docker-host and has no
   * use for them), the IPv6 address each task of its node has now (by container id); else why not.
   */
  pushNames(body: unknown): Promise<Record<string, { ipv6: Record<string, string> } | string>>;
}

const STATUS_TIMEOUT_MS = 2_000;
const PUSH_TIMEOUT_MS = 5_000;

export function createAgentRoots(setting: NodeAgentsSetting | undefined, log: Logger, connectDriver = connectRemoteVolumeDriver): AgentRoots {
  const agents = setting?.agents ?? {};
  const drivers = new Map<string, VolumeDriver>();
  const pending = new Map<string, Promise<VolumeDriver>>();

  function missing(address: string): PierError {
    return new PierError('E_NODE_AGENT_MISSING', `node ${address} holds volumes and this server has no node agent for it`, {
      status: 503,
      hint: `run \`pier agent\` on that node and start pier server with --node-agent ${address}=http://${address.includes(':') ? `[${address}]` : address}:7710 and --node-agent-token-file FILE (or PIER_NODE_AGENTS)`,
    });
  }

  function connect(address: string): Promise<VolumeDriver> {
    const known = drivers.get(address);
    if (known) return Promise.resolve(known);
    const url = agents[address];
    if (url === undefined || !setting) return Promise.reject(missing(address));
    let p = pending.get(address);
    if (!p) {
      p = connectDriver({ url, token: setting.token.reveal() }).then(
        (driver) => {
          drivers.set(address, driver);
          pending.delete(address);
          log.info({ node: address, url, kind: driver.kind, root: driver.root }, 'node agent connected');
          return driver;
        },
        (err: unknown) => {
          pending.delete(address);
          throw err;
        },
      );
      pending.set(address, p);
    }
    return p;
  }

  return {
    addresses: () => Object.keys(agents),
    has: (address) => agents[address] !== undefined,
    connect,
    get(address) {
      const known = drivers.get(address);
      if (known) return known;
      if (agents[address] === undefined) throw missing(address);
      connect(address).catch((err: unknown) => log.warn({ err, node: address }, 'node agent not reached'));
      throw new PierError('E_AGENT_UNREACHABLE', `the node agent of ${address} (${agents[address]}) has not answered yet`, {
        status: 503,
        hint: 'check that `pier agent` runs on that node and this machine reaches it; try again in a few seconds',
      });
    },
    async offeredPorts() {
      if (!setting) return {};
      const token = setting.token.reveal();
      const entries = await Promise.all(
        Object.entries(agents).map(async ([address, url]) => {
          const transport = createAgentTransport(url, token);
          const { request, response } = transport.download('GET', '/v1/root');
          // An agent that takes the connection and never answers: the request is ended, not left open.
          const timer = setTimeout(() => request.destroy(new Error(`no answer in ${STATUS_TIMEOUT_MS / 1000} s`)), STATUS_TIMEOUT_MS);
          try {
            const info = await transport.answer<AgentRoot>(await response);
            return [address, info.offeredPorts ?? null] as const;
          } catch {
            return [address, 'unreachable' as const] as const;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      return Object.fromEntries(entries);
    },
    async pushNames(body) {
      if (!setting) return {};
      const token = setting.token.reveal();
      const entries = await Promise.all(
        Object.entries(agents).map(async ([address, url]) => {
          const transport = createAgentTransport(url, token);
          const { request, response } = transport.download('PUT', '/v1/private-names', body);
          const timer = setTimeout(() => request.destroy(new Error(`no answer in ${PUSH_TIMEOUT_MS / 1000} s`)), PUSH_TIMEOUT_MS);
          try {
            const answer = await transport.answer<{ applied: boolean; ipv6?: Record<string, string> }>(await response);
            return [address, { ipv6: answer.ipv6 ?? {} }] as const;
          } catch (err) {
            return [address, (err as Error).message] as const;
          } finally {
            clearTimeout(timer);
          }
        }),
      );
      return Object.fromEntries(entries);
    },
    async connectAll() {
      await Promise.all(Object.keys(agents).map((a) => connect(a).catch((err: unknown) => log.warn({ err, node: a }, 'node agent not reached; asked again when its volumes are used'))));
    },
  };
}
