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
// IPv4 only: the overlay is (swarm-overlays.ts). A task is enforced within moments of Docker's
// `start` event (the time is logged); every container is looked at again every RECHECK_MS, and the
// chain is rewritten whole (iptables-restore --noflush replaces only this chain), so a flushed
// chain comes back. The rules live and die with the task's namespace: nothing to clean up.
import { execFile, spawn } from 'node:child_process';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { readJsonLines } from '../runtime/json-lines.js';

const exec = promisify(execFile);

/** The labels of a task on a private overlay: its subnet, and the ports its group offers. */
export const OFFER_LABELS = {
  subnet: 'dev.pier.private-subnet',
  ports: 'dev.pier.private-ports',
} as const;

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
}

/** The labels that tell the agent what a task offers. Pure. */
export function offerLabels(subnet: string, ports: { tcp: number[]; udp: number[] }): Record<string, string> {
  return { [OFFER_LABELS.subnet]: subnet, [OFFER_LABELS.ports]: `tcp=${ports.tcp.join(',')} udp=${ports.udp.join(',')}` };
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
  return { subnet, tcp: list(pm[1] as string), udp: list(pm[2] as string) };
}

/** The iptables-restore input (--noflush) that makes the task's chain hold `offer`. Pure. */
export function taskRules(offer: TaskOffer): string {
  const lines = ['*filter', `:${TASK_CHAIN} - [0:0]`];
  lines.push(`-A ${TASK_CHAIN} ! -s ${offer.subnet} -j RETURN`);
  lines.push(`-A ${TASK_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
  for (const [proto, ports] of [['tcp', offer.tcp], ['udp', offer.udp]] as const) {
    // multiport takes at most 15 ports per rule.
    for (let i = 0; i < ports.length; i += 15) lines.push(`-A ${TASK_CHAIN} -p ${proto} -m multiport --dports ${ports.slice(i, i + 15).join(',')} -j RETURN`);
  }
  lines.push(`-A ${TASK_CHAIN} -p tcp -j REJECT --reject-with tcp-reset`);
  lines.push(`-A ${TASK_CHAIN} -p udp -j REJECT --reject-with icmp-port-unreachable`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export interface TaskFirewallOptions {
  /** The node's engine (its unix socket). */
  socketPath: string;
  log: Logger;
  /** The binaries (default nsenter, iptables and iptables-restore). */
  nsenter?: string | undefined;
  iptables?: string | undefined;
}

export interface TaskFirewallStatus {
  /** Containers whose chain is written now. */
  enforced: number;
  /** The last failure to write one (null: none since the last success). */
  problem: string | null;
}

export interface TaskFirewall {
  status(): TaskFirewallStatus;
  close(): Promise<void>;
}

interface Known {
  /** The task's network namespace (Docker's sandbox file): a restart makes a new one. */
  netns: string;
  writtenAt: number;
  rules: string;
}

interface RawContainer {
  Id: string;
  State?: { Running?: boolean; StartedAt?: string };
  Config?: { Labels?: Record<string, string> | null };
  HostConfig?: { NetworkMode?: string };
  NetworkSettings?: { SandboxKey?: string; Networks?: Record<string, { IPAddress?: string }> | null };
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

  async function write(netns: string, rules: string): Promise<void> {
    // -w: wait for the xtables lock (Docker holds it while it sets up a starting task).
    await must(netns, [`${iptables}-restore`, '-w', '5', '--noflush'], rules);
    const check = await inTask(netns, [iptables, '-w', '5', '-C', 'INPUT', '-j', TASK_CHAIN]);
    // 1: no such rule. Anything else (the lock, a missing binary) is a failure, not a reason to add a second jump.
    if (check.code === 1) await must(netns, [iptables, '-w', '5', '-I', 'INPUT', '1', '-j', TASK_CHAIN]);
    else if (check.code !== 0) throw new Error(`${iptables} -C exited with ${check.code}: ${check.err}`);
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
      if (!addresses.some((a) => inSubnet(a, offer.subnet))) {
        fail(id, `container ${id.slice(0, 12)} has no address in ${offer.subnet} (${addresses.filter(Boolean).join(', ') || 'none'})`, 'the task is not on the subnet its label names; not enforced');
        return;
      }
      const rules = taskRules(offer);
      const prior = known.get(id);
      if (!force && prior && prior.netns === netns && prior.rules === rules && Date.now() - prior.writtenAt < REWRITE_MS) return;
      try {
        await write(netns, rules);
        known.set(id, { netns, writtenAt: Date.now(), rules });
        problems.delete(id);
        const started = raw.State?.StartedAt ? Date.parse(raw.State.StartedAt) : NaN;
        const fresh = prior?.netns !== netns;
        log[fresh ? 'info' : 'debug'](
          { container: id.slice(0, 12), subnet: offer.subnet, tcp: offer.tcp, udp: offer.udp, ...(Number.isFinite(started) && fresh ? { msSinceStart: Date.now() - started } : {}) },
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
    status: () => ({ enforced: known.size, problem: problems.size ? `${problems.size} task(s) not enforced; ${[...problems.values()][0]}` : null }),
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
