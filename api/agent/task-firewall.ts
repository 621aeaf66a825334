// Offered ports on a swarm, enforced by the node agent (`pier agent --docker-host`) inside each
// task. On one engine the API server's host filters the private bridges in its FORWARD chain
// (api/private/private-firewall.ts); a swarm's private network is an overlay, whose traffic
// (VXLAN between nodes, a bridge inside the overlay's own namespace on a node) never passes the
// host's FORWARD chain. What every task does pass is its own network namespace: so the agent,
// root on its node, writes a chain in the INPUT of each task container of its engine that joined
// a private overlay (the service carries the labels below, swarm-private.ts), in the task's own
// network namespace (Docker's sandbox file, never a PID's: a container in the node's namespace or
// another container's, or one not on the labelled subnet, is refused and reported):
//   RETURN  not from the overlay's subnet (the edge and the checks through the node's published
//           ports, the embedded DNS on loopback)
//   RETURN  established and related (answers to the task's own connections)
//   RETURN  TCP / UDP to an offered port
//   REJECT  TCP (tcp-reset) and UDP (port unreachable): every other new connection from the overlay
// IPv6 rides the IPv4 overlay (Swarm on Engine 20.10 gives tasks none of their own): when the
// service also carries the environment's IPv6 /64 (dev.pier.private-ipv6), the agent turns IPv6
// on in the task, gives its overlay interface PREFIX::IPv4 (unique, since Swarm's IPv4 addresses
// are), and a permanent neighbour entry for every other address of the subnet, at the MAC Docker
// derives from it (02:42 + the IPv4 address: the overlay forwards no neighbour discovery, but it
// forwards frames to a MAC it knows); the same chain then filters IPv6 in ip6tables. Measured in
// docs/several-machines.md ("IPv6 on the overlay itself"). A task is enforced within moments of Docker's
// `start` event (the time is logged); every container is looked at again every RECHECK_MS, and the
// chain is rewritten whole (iptables-restore --noflush replaces only this chain), so a flushed
// chain comes back. The rules live and die with the task's namespace: nothing to clean up.
import { execFile, spawn } from 'node:child_process';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'pino';
import { readFile, writeFile } from 'node:fs/promises';
import { readJsonLines } from '../runtime/json-lines.js';
import { hostsWithNames, type NamesState } from './task-names.js';

const exec = promisify(execFile);

/** The labels of a task on a private overlay: its subnet, and the ports its group offers. */
export const OFFER_LABELS = {
  subnet: 'dev.pier.private-subnet',
  ports: 'dev.pier.private-ports',
  /** The environment's IPv6 /64: the agent gives the task PREFIX::IPv4 on the overlay. */
  ipv6: 'dev.pier.private-ipv6',
} as const;

/** The largest IPv4 subnet whose every address gets a neighbour entry in each task (4094 entries). */
const MAX_NEIGHBOUR_BITS = 12;

/** The chain's name in each task's namespace. */
export const TASK_CHAIN = 'PIER-OFFERED';

/** Look at every labelled container at least this often (a missed event, a flushed chain). */
const RECHECK_MS = 10_000;
/** Rewrite a container's chain at least this often. */
const REWRITE_MS = 60_000;
/** A failed write is tried again this soon. */
const RETRY_MS = 1_000;

export interface TaskOffer {
  subnet: string;
  tcp: number[];
  udp: number[];
  /** The environment's IPv6 /64, when the task gets IPv6 on the overlay. */
  ipv6: string | null;
}

/** The labels that tell the agent what a task offers (and its IPv6 prefix, when given). Pure. */
export function offerLabels(subnet: string, ports: { tcp: number[]; udp: number[] }, ipv6?: string | null): Record<string, string> {
  return {
    [OFFER_LABELS.subnet]: subnet,
    [OFFER_LABELS.ports]: `tcp=${ports.tcp.join(',')} udp=${ports.udp.join(',')}`,
    ...(ipv6 ? { [OFFER_LABELS.ipv6]: ipv6 } : {}),
  };
}

/** A task's IPv6 address on the overlay: the /64's first half, then zeros, then its IPv4 address. Pure. */
export function taskIpv6(prefix: string, ipv4: string): string {
  const [base] = ipaddr.IPv6.parseCIDR(prefix);
  const v4 = ipaddr.IPv4.parse(ipv4).octets;
  const parts = [...base.parts.slice(0, 4), 0, 0, ((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number)];
  return new ipaddr.IPv6(parts).toRFC5952String();
}

/** The MAC Docker gives an overlay interface: 02:42 and the IPv4 address's four bytes. Pure. */
export function overlayMac(ipv4: string): string {
  return ['02', '42', ...ipaddr.IPv4.parse(ipv4).octets.map((o) => o.toString(16).padStart(2, '0'))].join(':');
}

/** Every host address of an IPv4 subnet (not its first nor its last). Pure. */
export function subnetHosts(subnet: string): string[] {
  const [base, bits] = ipaddr.IPv4.parseCIDR(subnet);
  const start = base.octets.reduce((v, o) => v * 256 + o, 0) & ~(2 ** (32 - bits) - 1);
  const out: string[] = [];
  for (let n = start + 1; n < start + 2 ** (32 - bits) - 1; n++) out.push([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.'));
  return out;
}

/**
 * The `ip -batch` input that gives a task its IPv6 address on interface `iface` and a neighbour
 * entry for every other host of the subnet. Pure.
 */
export function ipv6Batch(offer: TaskOffer & { ipv6: string }, ipv4: string, iface: string): string {
  const lines = [`address replace ${taskIpv6(offer.ipv6, ipv4)}/96 dev ${iface} nodad`];
  for (const host of subnetHosts(offer.subnet)) {
    if (host !== ipv4) lines.push(`neighbour replace ${taskIpv6(offer.ipv6, host)} lladdr ${overlayMac(host)} dev ${iface} nud permanent`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * What a container's labels say it offers, or null when it carries none. Strict: the values come
 * from a label anyone with the engine could set, and end up in iptables input run as root. Throws
 * on a malformed label.
 */
export function parseOffer(labels: Record<string, string> | null | undefined): TaskOffer | null {
  const subnet = labels?.[OFFER_LABELS.subnet];
  if (subnet === undefined) return null;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(subnet);
  if (!m || !isIPv4(m[1] as string) || Number(m[2]) > 32 || Number(m[2]) < 8) throw new Error(`${OFFER_LABELS.subnet} "${subnet.slice(0, 60)}" is not an IPv4 subnet of /8 to /32`);
  const text = labels?.[OFFER_LABELS.ports] ?? '';
  const pm = /^tcp=([0-9,]*) udp=([0-9,]*)$/.exec(text);
  if (!pm) throw new Error(`${OFFER_LABELS.ports} "${text.slice(0, 60)}" is not "tcp=P,… udp=P,…"`);
  const list = (s: string): number[] => {
    if (s === '') return [];
    const ports = s.split(',').map(Number);
    if (ports.length > 64 || ports.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) throw new Error(`${OFFER_LABELS.ports} "${text.slice(0, 60)}" holds a port out of 1-65535 (or more than 64)`);
    return ports;
  };
  const v6 = labels?.[OFFER_LABELS.ipv6];
  if (v6 !== undefined) {
    const parsed = ipaddr.IPv6.isValidCIDR(v6) ? ipaddr.IPv6.parseCIDR(v6) : null;
    if (!parsed || parsed[1] !== 64 || parsed[0].range() !== 'uniqueLocal' || !parsed[0].parts.slice(4).every((p) => p === 0)) {
      throw new Error(`${OFFER_LABELS.ipv6} "${v6.slice(0, 60)}" is not a unique local IPv6 /64`);
    }
    if (Number(m[2]) < 32 - MAX_NEIGHBOUR_BITS) throw new Error(`${OFFER_LABELS.ipv6} needs an IPv4 subnet of /${32 - MAX_NEIGHBOUR_BITS} or smaller (a neighbour entry per address), not ${subnet}`);
  }
  return { subnet, tcp: list(pm[1] as string), udp: list(pm[2] as string), ipv6: v6 ?? null };
}

/**
 * The iptables-restore input (--noflush) that makes the task's chain hold `offer`; with `family`
 * 6, the ip6tables-restore input for its IPv6 prefix. Pure.
 */
export function taskRules(offer: TaskOffer, family: 4 | 6 = 4): string {
  const lines = ['*filter', `:${TASK_CHAIN} - [0:0]`];
  lines.push(`-A ${TASK_CHAIN} ! -s ${family === 6 ? offer.ipv6 : offer.subnet} -j RETURN`);
  lines.push(`-A ${TASK_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
  for (const [proto, ports] of [['tcp', offer.tcp], ['udp', offer.udp]] as const) {
    // multiport takes at most 15 ports per rule.
    for (let i = 0; i < ports.length; i += 15) lines.push(`-A ${TASK_CHAIN} -p ${proto} -m multiport --dports ${ports.slice(i, i + 15).join(',')} -j RETURN`);
  }
  lines.push(`-A ${TASK_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`);
  lines.push(`-A ${TASK_CHAIN} -p udp -j REJECT --reject-with ${family === 6 ? 'icmp6-port-unreachable' : 'icmp-port-unreachable'}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export interface TaskFirewallOptions {
  /** The node's engine (its unix socket). */
  socketPath: string;
  log: Logger;
  /** The binaries (default nsenter, iptables and iptables-restore, ip6tables and ip6tables-restore). */
  nsenter?: string | undefined;
  iptables?: string | undefined;
}

export interface TaskFirewallStatus {
  /** Containers whose chain is written now. */
  enforced: number;
  /** The last failure to write one (null: none since the last success). */
  problem: string | null;
  /** The IPv6 address given to each task that has one now, by container id. */
  ipv6: Record<string, string>;
  /** Tasks whose hosts file holds the private names last pushed (task-names.ts); null: none pushed yet. */
  named: number | null;
}

export interface TaskFirewall {
  status(): TaskFirewallStatus;
  /** The private names the API server pushed (whole): written into the hosts file of every task on each overlay. */
  setNames(state: NamesState): Promise<void>;
  close(): Promise<void>;
}

interface Known {
  /** The task's network namespace (Docker's sandbox file): a restart makes a new one. */
  netns: string;
  writtenAt: number;
  rules: string;
  /** Its IPv6 address on the overlay, when it has one. */
  ipv6: string | null;
  subnet: string;
  /** Docker's hosts file of the container (bind-mounted as its /etc/hosts). */
  hostsPath: string | null;
  /** What its hosts file was last given (JSON of the names), null: not yet. */
  hostsKey: string | null;
}

interface RawContainer {
  Id: string;
  State?: { Running?: boolean; StartedAt?: string };
  Config?: { Labels?: Record<string, string> | null };
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: { SandboxKey?: string; Networks?: Record<string, { IPAddress?: string }> | null };
  HostsPath?: string;
}

/** Whether IPv4 `address` is in `subnet` (a.b.c.d/n). Pure. */
export function inSubnet(address: string, subnet: string): boolean {
  const [base, bits] = subnet.split('/');
  if (!isIPv4(address) || !base || !isIPv4(base)) return false;
  const n = Number(bits);
  const num = (a: string) => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const size = 2 ** (32 - n);
  return Math.floor(num(address) / size) === Math.floor(num(base) / size);
}

export function startTaskFirewall(options: TaskFirewallOptions): TaskFirewall {
  const { log } = options;
  const docker = new Docker({ socketPath: options.socketPath });
  const nsenter = options.nsenter ?? 'nsenter';
  const iptables = options.iptables ?? 'iptables';
  const known = new Map<string, Known>();
  /** Why a labelled task is not enforced now, by container (cleared when it is, or is gone). */
  const problems = new Map<string, string>();
  const inFlight = new Map<string, Promise<void>>();
  /** A `start` event arrived while a write was under way (it may have read the old namespace). */
  const again = new Set<string>();
  const abort = new AbortController();
  let closed = false;
  /** The private names last pushed by the API server; null until the first push (hosts files are left alone). */
  let names: NamesState | null = null;

  /** Writes the names of the task's overlay into its hosts file when they changed; a failure is logged and tried again. */
  async function writeHosts(id: string, k: Known): Promise<void> {
    if (names === null || !k.hostsPath) return;
    const hosts = names.get(k.subnet) ?? [];
    const key = JSON.stringify(hosts);
    if (k.hostsKey === key) return;
    try {
      const current = await readFile(k.hostsPath, 'utf8');
      const next = hostsWithNames(current, hosts);
      // In place (the file is bind-mounted into the task: a rename would not reach it).
      if (next !== current) await writeFile(k.hostsPath, next);
      k.hostsKey = key;
      log.debug({ container: id.slice(0, 12), subnet: k.subnet, addresses: hosts.length }, 'private names written to the task\'s hosts file');
    } catch (err) {
      if (known.get(id) !== k || closed) return;
      log.warn({ container: id.slice(0, 12), err: (err as Error).message }, 'cannot write the private names into the task\'s hosts file; trying again');
      setTimeout(() => void (known.get(id) === k && !closed ? writeHosts(id, k) : undefined), RETRY_MS).unref();
    }
  }

  /** Runs `args` in the network namespace at `netns` (the container's sandbox); resolves with the exit code. */
  function inTask(netns: string, args: string[], input?: string): Promise<{ code: number; err: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(nsenter, [`--net=${netns}`, '--', ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      // nsenter may exit before reading its input (the namespace went with its task): the exit code says so, not an EPIPE.
      child.stdin.on('error', () => undefined);
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, err: err.trim().slice(0, 300) }));
      child.stdin.end(input ?? '');
    });
  }

  async function must(netns: string, args: string[], input?: string): Promise<void> {
    const r = await inTask(netns, args, input);
    if (r.code !== 0) throw new Error(`${args[0]} exited with ${r.code}: ${r.err}`);
  }

  async function writeChain(netns: string, binary: string, rules: string): Promise<void> {
    // -w: wait for the xtables lock (Docker holds it while it sets up a starting task).
    await must(netns, [`${binary}-restore`, '-w', '5', '--noflush'], rules);
    const check = await inTask(netns, [binary, '-w', '5', '-C', 'INPUT', '-j', TASK_CHAIN]);
    // 1: no such rule. Anything else (the lock, a missing binary) is a failure, not a reason to add a second jump.
    if (check.code === 1) await must(netns, [binary, '-w', '5', '-I', 'INPUT', '1', '-j', TASK_CHAIN]);
    else if (check.code !== 0) throw new Error(`${binary} -C exited with ${check.code}: ${check.err}`);
  }

  /** The name of the task's interface that holds `ipv4` (its overlay one). */
  async function interfaceOf(netns: string, ipv4: string): Promise<string> {
    const r = await new Promise<{ code: number; out: string }>((resolve, reject) => {
      const child = spawn(nsenter, [`--net=${netns}`, '--', 'ip', '-o', '-4', 'address', 'show'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, out }));
    });
    // "12: eth0    inet 198.19.170.2/24 brd 198.19.170.255 scope global eth0 …"
    const line = r.out.split('\n').find((l) => l.includes(` inet ${ipv4}/`));
    const name = line ? /^\d+:\s+([A-Za-z0-9_.-]{1,15})(?:@\S+)?\s/.exec(line)?.[1] : undefined;
    if (r.code !== 0 || !name) throw new Error(`no interface holds ${ipv4} in the task (ip exited with ${r.code})`);
    return name;
  }

  /** Turns IPv6 on in the task and gives its overlay interface PREFIX::IPv4, with the subnet's neighbours. */
  async function writeIpv6(netns: string, offer: TaskOffer & { ipv6: string }, ipv4: string): Promise<string> {
    const iface = await interfaceOf(netns, ipv4);
    await must(netns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=0', `net.ipv6.conf.${iface}.disable_ipv6=0`]);
    await must(netns, ['ip', '-batch', '-'], ipv6Batch(offer, ipv4, iface));
    return taskIpv6(offer.ipv6, ipv4);
  }

  /** The whole state of one task: IPv4's chain; with a prefix, IPv6's chain first (before the address exists), then the address. */
  async function write(netns: string, offer: TaskOffer, ipv4: string): Promise<string | null> {
    await writeChain(netns, iptables, taskRules(offer));
    if (!offer.ipv6) return null;
    await writeChain(netns, `${iptables.replace(/iptables$/, '')}ip6tables`, taskRules(offer, 6));
    return writeIpv6(netns, { ...offer, ipv6: offer.ipv6 }, ipv4);
  }

  function fail(id: string, problem: string, warn: string): void {
    known.delete(id);
    if (problems.get(id) !== problem) log.warn({ container: id.slice(0, 12), problem }, warn);
    problems.set(id, problem);
  }

  /** Writes the chain of container `id` when it is new, restarted, changed or due. */
  function enforce(id: string, force = false): Promise<void> {
    const running = inFlight.get(id);
    if (running) {
      if (force) again.add(id);
      return running;
    }
    const p = (async () => {
      let raw: RawContainer;
      try {
        raw = (await docker.getContainer(id).inspect()) as RawContainer;
      } catch (err) {
        known.delete(id);
        problems.delete(id);
        log.debug({ container: id, err: (err as Error).message }, 'task gone before its ports were enforced');
        return;
      }
      if (!raw.State?.Running) {
        known.delete(id);
        problems.delete(id);
        return;
      }
      let offer: TaskOffer | null;
      try {
        offer = parseOffer(raw.Config?.Labels);
      } catch (err) {
        fail(id, `container ${id.slice(0, 12)}: ${(err as Error).message}`, 'offered ports label unreadable; the task is not enforced');
        return;
      }
      if (!offer) return;
      // Only a swarm task's own namespace: never the node's (network mode host) or another container's.
      const mode = raw.HostConfig?.NetworkMode ?? '';
      const netns = raw.NetworkSettings?.SandboxKey ?? '';
      if (!raw.Config?.Labels?.['com.docker.swarm.task.id'] || mode === 'host' || mode.startsWith('container:') || !netns.startsWith('/')) {
        fail(id, `container ${id.slice(0, 12)} is not a swarm task with a network namespace of its own (network mode ${mode || 'none'})`, 'offered ports label on a container that is not a task; not enforced');
        return;
      }
      // The labelled subnet must be one the task is on: else the rule would let everything through.
      const addresses = Object.values(raw.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress ?? '');
      const ipv4 = addresses.find((a) => inSubnet(a, offer.subnet));
      if (!ipv4) {
        fail(id, `container ${id.slice(0, 12)} has no address in ${offer.subnet} (${addresses.filter(Boolean).join(', ') || 'none'})`, 'the task is not on the subnet its label names; not enforced');
        return;
      }
      const rules = `${taskRules(offer)}${offer.ipv6 ?? ''}`;
      const prior = known.get(id);
      if (!force && prior && prior.netns === netns && prior.rules === rules && Date.now() - prior.writtenAt < REWRITE_MS) return;
      try {
        const ipv6 = await write(netns, offer, ipv4);
        const hostsPath = raw.HostsPath && raw.HostsPath.startsWith('/') ? raw.HostsPath : null;
        // hostsKey null: the file is read again (Docker may have rewritten it), and written only if it differs.
        const entry: Known = { netns, writtenAt: Date.now(), rules, ipv6, subnet: offer.subnet, hostsPath, hostsKey: null };
        known.set(id, entry);
        problems.delete(id);
        // Docker writes the hosts file again at a restart: the names go back in with the rules.
        await writeHosts(id, entry);
        const started = raw.State?.StartedAt ? Date.parse(raw.State.StartedAt) : NaN;
        const fresh = prior?.netns !== netns;
        log[fresh ? 'info' : 'debug'](
          { container: id.slice(0, 12), subnet: offer.subnet, ipv6, tcp: offer.tcp, udp: offer.udp, ...(Number.isFinite(started) && fresh ? { msSinceStart: Date.now() - started } : {}) },
          'offered ports enforced in the task',
        );
      } catch (err) {
        fail(id, `container ${id.slice(0, 12)}: ${(err as Error).message}`, 'cannot enforce offered ports in the task; trying again');
        // Soon, not only at the next sweep: the namespace may have been busy.
        setTimeout(() => void (closed ? undefined : enforce(id)), RETRY_MS).unref();
      }
    })().finally(() => {
      inFlight.delete(id);
      if (again.delete(id) && !closed) void enforce(id, true);
    });
    inFlight.set(id, p);
    return p;
  }

  async function sweep(): Promise<void> {
    let list: { Id: string }[];
    try {
      list = await docker.listContainers({ filters: { label: [OFFER_LABELS.subnet], status: ['running'] } });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot list the tasks of this node; trying again');
      return;
    }
    const ids = new Set(list.map((c) => c.Id));
    for (const id of [...known.keys(), ...problems.keys()]) {
      if (ids.has(id)) continue;
      known.delete(id);
      problems.delete(id);
    }
    for (const id of ids) await enforce(id);
  }

  async function watch(): Promise<void> {
    while (!closed) {
      try {
        const stream = (await docker.getEvents({
          filters: { type: ['container'], event: ['start'], label: [OFFER_LABELS.subnet] },
          abortSignal: abort.signal,
        } as Docker.GetEventsOptions)) as Readable;
        const onAbort = (): void => void stream.destroy();
        abort.signal.addEventListener('abort', onAbort, { once: true });
        try {
          // Started now, after the subscription: whatever started before it is found by this sweep.
          void sweep();
          for await (const message of readJsonLines(stream, (line) => log.warn({ line }, 'unparseable docker event'))) {
            const id = (message as { id?: unknown }).id;
            if (typeof id === 'string') void enforce(id, true);
          }
        } finally {
          abort.signal.removeEventListener('abort', onAbort);
          stream.destroy();
        }
      } catch (err) {
        if (closed) return;
        log.warn({ err: (err as Error).message }, 'docker events of this node lost; watching again');
      }
      if (!closed) await new Promise((r) => setTimeout(r, 1000));
    }
  }

  void watch();
  const timer = setInterval(() => void sweep(), RECHECK_MS);
  timer.unref();

  return {
    status: () => ({
      enforced: known.size,
      problem: problems.size ? `${problems.size} task(s) not enforced; ${[...problems.values()][0]}` : null,
      ipv6: Object.fromEntries([...known].flatMap(([id, k]) => (k.ipv6 ? [[id, k.ipv6]] : []))),
      named: names === null ? null : [...known.values()].filter((k) => k.hostsKey !== null && k.hostsKey === JSON.stringify(names?.get(k.subnet) ?? [])).length,
    }),
    async setNames(state) {
      names = state;
      await Promise.all([...known].map(([id, k]) => writeHosts(id, k)));
    },
    async close() {
      closed = true;
      clearInterval(timer);
      abort.abort();
      await Promise.allSettled([...inFlight.values()]);
    },
  };
}

/** Whether iptables runs here (checked at start, so a missing binary is said at once). */
export async function iptablesWorks(iptables = 'iptables'): Promise<string | null> {
  try {
    await exec(iptables, ['-w', '-L', 'INPUT', '-n']);
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0] ?? String(err);
  }
}
