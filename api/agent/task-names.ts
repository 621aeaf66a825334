// Private names on a swarm, with AAAA: Swarm's DNS answers a service alias with A records only, and
// names that follow Swarm's running tasks rather than Pier's checks. So the API server pushes to
// every node agent, for each environment's overlay (by its IPv4 subnet), the names its ready
// instances answer (PROCESS.APP.internal, APP.internal) with their IPv4 and IPv6 addresses
// (scheduler/swarm-names.ts), and the agent writes them into the hosts file of each task of its
// node on that overlay (task-firewall.ts, which already follows the tasks). `getaddrinfo` reads
// the hosts file before DNS (glibc, musl, busybox, Go, Node's `dns.lookup`), so those clients get
// AAAA and A records of ready instances only; a task sees its own environment's names only. The
// block is Pier's own, between two marker lines; Docker's lines (localhost, the task's hostname)
// stay. Tools that ask DNS directly (`nslookup`, `dig`) still get Swarm's A records.
import { isIPv4, isIPv6 } from 'node:net';
import { PierError } from '../pier-error.js';

export const HOSTS_BEGIN = '# pier private names (pier agent; rewritten as instances become ready or leave)';
export const HOSTS_END = '# end of pier private names';

/** At most this many addresses per overlay (a /20 of tasks, with their IPv6 twins). */
const MAX_HOSTS = 8192;
const NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.internal$/;

export interface NamesHost {
  address: string;
  names: string[];
}

/** What the API server pushed: by overlay subnet, each address and the names it answers. */
export type NamesState = Map<string, NamesHost[]>;

function bad(message: string): PierError {
  return new PierError('E_AGENT_BAD_REQUEST', `private names: ${message}`, { status: 400 });
}

/**
 * Reads a push strictly (what ends up in a task's hosts file): `{ networks: [{ subnet, hosts: [{
 * address, names }] }] }`, every subnet an IPv4 CIDR, every address an IP, every name a
 * lowercase `….internal` DNS name. Throws E_AGENT_BAD_REQUEST naming what is wrong.
 */
export function parseNames(body: unknown): NamesState {
  const networks = (body as { networks?: unknown } | null)?.networks;
  if (!Array.isArray(networks)) throw bad('the body needs "networks", a list');
  const state: NamesState = new Map();
  for (const n of networks as unknown[]) {
    const { subnet, hosts } = (n ?? {}) as { subnet?: unknown; hosts?: unknown };
    const m = typeof subnet === 'string' ? /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(subnet) : null;
    if (!m || !isIPv4(m[1] as string) || Number(m[2]) > 32) throw bad(`subnet ${JSON.stringify(subnet)?.slice(0, 60)} is not an IPv4 CIDR`);
    if (!Array.isArray(hosts) || hosts.length > MAX_HOSTS) throw bad(`"hosts" of ${subnet} must be a list of at most ${MAX_HOSTS}`);
    const list: NamesHost[] = [];
    for (const h of hosts as unknown[]) {
      const { address, names } = (h ?? {}) as { address?: unknown; names?: unknown };
      if (typeof address !== 'string' || (!isIPv4(address) && !isIPv6(address))) throw bad(`address ${JSON.stringify(address)?.slice(0, 60)} is not an IP address`);
      if (!Array.isArray(names) || names.length === 0 || names.length > 16 || !names.every((x) => typeof x === 'string' && NAME.test(x))) {
        throw bad(`the names of ${address} must be 1 to 16 lowercase DNS names ending in .internal`);
      }
      list.push({ address, names: names as string[] });
    }
    state.set(subnet as string, list);
  }
  return state;
}

/**
 * `current` (a task's hosts file) with Pier's block replaced by `hosts` (removed when there are
 * none); everything else is kept as it was. Pure.
 */
export function hostsWithNames(current: string, hosts: NamesHost[]): string {
  const lines = current.split('\n');
  const begin = lines.indexOf(HOSTS_BEGIN);
  const end = begin === -1 ? -1 : lines.indexOf(HOSTS_END, begin);
  const kept = begin === -1 ? lines : [...lines.slice(0, begin), ...lines.slice(end === -1 ? lines.length : end + 1)];
  while (kept.length > 0 && kept[kept.length - 1] === '') kept.pop();
  if (hosts.length === 0) return `${kept.join('\n')}\n`;
  // IPv6 first: a resolver that takes the first match gets the AAAA.
  const ordered = [...hosts].sort((a, b) => Number(isIPv4(a.address)) - Number(isIPv4(b.address)));
  return `${[...kept, HOSTS_BEGIN, ...ordered.map((h) => `${h.address}\t${h.names.join(' ')}`), HOSTS_END].join('\n')}\n`;
}
