// Enforces `[[private]]` and keeps other networks out. On a private network, an instance takes new
// connections from its peers only on the ports its process group offers (TCP, or UDP with
// `protocol = "udp"`; none for a group without `[[private]]`), and nothing from outside the
// network opens a connection into it. Docker bridges let every container of a network reach every
// port of the others, and Docker 20.10 isolates bridges from each other for IPv4 only (its
// ip6tables support is experimental and off by default). The host filters bridged and routed
// traffic in its FORWARD chain, so Pier keeps there one chain of its own per installation
// (PIER-<installation>, in iptables and ip6tables; jumped to first from DOCKER-USER, the chain
// Docker keeps ahead of its own rules, or from FORWARD where Docker has none: ip6tables on an
// engine without "ip6tables" in daemon.json. Not first in FORWARD for IPv4: Docker inserts each
// new bridge's ACCEPT rules at the top of FORWARD, ahead of any jump), holding, for the bridge of
// each private network this server knows:
//   DROP    into the bridge from any other interface, new connections (other networks, the host's
//           other links)
//   RETURN  bridge → bridge, to an instance's address, an offered port and protocol
//   REJECT  bridge → bridge, new TCP or UDP (tcp-reset / port unreachable)
// Matching the bridge rather than the subnets also closes the IPv6 link-local addresses (fe80::)
// every container has there.
// The chain is rewritten whole from current state (iptables-restore --noflush replaces only this
// chain, atomically) whenever what it should hold changes, and again every RECHECK_MS in case
// someone flushed it; nothing else of the host's rules is touched, so nothing piles up. A network
// made a moment ago is closed (close()) before any instance joins it: its DROP and REJECT rules
// are appended at once and kept in every rewrite until the names rounds see it. Traffic from the
// host itself (the edge, the checks: OUTPUT, not FORWARD) is not affected. Rules outlive the
// server on purpose: its instances keep running, and keep being enforced, while it restarts.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

const exec = promisify(execFile);

/** Rewrite the chain at least this often, even when nothing changed (someone may have flushed it). */
const RECHECK_MS = 30_000;

export interface FirewallNetwork {
  /** The Linux bridge of the Docker network (br-<id>, host-routes.ts bridgeName). */
  bridge: string;
}

export interface FirewallInstance {
  /** Its addresses on its private network (null: not known, or not on it). */
  ipv4: string | null;
  ipv6: string | null;
  /** The private network it is on. */
  network: FirewallNetwork;
  /** TCP ports its process group offers; empty: none. */
  ports: number[];
  /** UDP ports it offers (`protocol = "udp"`); none when absent. */
  udpPorts?: number[] | undefined;
}

export interface PrivateFirewall {
  /** The chain's name (the same in iptables and ip6tables). */
  readonly chain: string;
  /** Makes the chain hold exactly these networks and instances; returns why it cannot, or null. */
  apply(networks: FirewallNetwork[], instances: FirewallInstance[]): Promise<string | null>;
  /**
   * Closes a network just made, before any instance joins it: nothing opens a connection on it
   * until the next apply() lets the offered ports through. Returns why it cannot, or null.
   */
  close(network: FirewallNetwork): Promise<string | null>;
  /**
   * Resolves once apply() has written the chain (every network it was given, and their
   * instances), or found nothing to hold: from then on the chain is the isolation in force.
   */
  written(): Promise<void>;
}

export interface PrivateFirewallOptions {
  installationId: string;
  log: Logger;
  /** The binaries (default iptables, ip6tables and their -restore). */
  iptables?: string | undefined;
  ip6tables?: string | undefined;
  /** Where the bridge netfilter switches are read (default /proc/sys/net/bridge). */
  bridgeSysctlDir?: string | undefined;
}

/**
 * Traffic between two containers on one bridge reaches iptables only when the kernel passes
 * bridged packets to it (`net.bridge.bridge-nf-call-iptables` / `-ip6tables` = 1; Docker usually
 * sets them). Off, the chain is there but sees nothing: said, not assumed.
 */
async function bridgeFilterProblem(dir: string): Promise<string | null> {
  const off: string[] = [];
  for (const name of ['bridge-nf-call-iptables', 'bridge-nf-call-ip6tables']) {
    const value = await readFile(join(dir, name), 'utf8').then((v) => v.trim(), () => null);
    if (value !== null && value !== '1') off.push(`net.bridge.${name}`);
  }
  if (off.length === 0) return null;
  return `private ports are not enforced between instances on one network: ${off.join(' and ')} ${off.length > 1 ? 'are' : 'is'} 0, so bridged traffic bypasses the firewall; set ${off.map((n) => `sysctl -w ${n}=1`).join(' and ')} (and in /etc/sysctl.d to keep it)`;
}

/** The chain of an installation: PIER- and the random part of its id (chain names are ≤ 28 chars). */
export function privateFirewallChain(installationId: string): string {
  return `PIER-${installationId.replace(/^inst_/, '').replace(/[^A-Za-z0-9]/g, '').slice(0, 20)}`;
}

/** The rules of one bridge that close it: nothing from outside opens a connection, nothing new inside. */
function bridgeRules(chain: string, family: 4 | 6, b: string): string[] {
  return [
    `-A ${chain} ! -i ${b} -o ${b} -m conntrack --ctstate NEW -j DROP`,
    `-A ${chain} -i ${b} -o ${b} -p tcp -m conntrack --ctstate NEW -j REJECT --reject-with tcp-reset`,
    `-A ${chain} -i ${b} -o ${b} -p udp -m conntrack --ctstate NEW -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`,
  ];
}

/** The iptables-restore input that makes `chain` hold the rules of one address family. */
export function firewallRules(chain: string, family: 4 | 6, networks: FirewallNetwork[], instances: FirewallInstance[]): string {
  const host = family === 4 ? '/32' : '/128';
  const lines = ['*filter', `:${chain} - [0:0]`];
  // Replies and connections already open are left alone (a port no longer offered does not cut them).
  lines.push(`-A ${chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  const bridges = [...new Set(networks.map((n) => n.bridge))];
  // Other networks (another environment, another organisation) and the host's other links first.
  for (const b of bridges) lines.push(bridgeRules(chain, family, b)[0] as string);
  for (const inst of instances) {
    const address = family === 4 ? inst.ipv4 : inst.ipv6;
    if (!address) continue;
    for (const [protocol, ports] of [['tcp', inst.ports], ['udp', inst.udpPorts ?? []]] as const) {
      for (const port of [...new Set(ports)].sort((a, b) => a - b)) {
        lines.push(`-A ${chain} -i ${inst.network.bridge} -o ${inst.network.bridge} -d ${address}${host} -p ${protocol} -m ${protocol} --dport ${port} -j RETURN`);
      }
    }
  }
  for (const b of bridges) lines.push(...bridgeRules(chain, family, b).slice(1));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** How long a network closed by close() is kept in the chain without apply() listing it. */
const PENDING_MS = 60_000;

export function createPrivateFirewall(options: PrivateFirewallOptions): PrivateFirewall {
  const chain = privateFirewallChain(options.installationId);
  const log = options.log.child({ component: 'private-firewall', chain });
  const binaries = { 4: options.iptables ?? 'iptables', 6: options.ip6tables ?? 'ip6tables' } as const;
  let last: { text: string; at: number } | null = null;
  /** Looked for and not there, and not written since: no chain to empty (only this writes it). */
  let absent = false;
  let warned = false;
  let problem: string | null = null;
  /** Networks closed by close() that apply() has not been given yet, by bridge, with when. */
  const pending = new Map<string, number>();
  /** One change at a time: a rewrite computed before close() must not land after it unmerged. */
  let queue: Promise<unknown> = Promise.resolve();
  let markWritten = (): void => undefined;
  const firstWrite = new Promise<void>((resolve) => (markWritten = resolve));
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = queue.then(fn);
    queue = p.catch(() => undefined);
    return p;
  };

  async function jumpTo(family: 4 | 6): Promise<void> {
    const jump = [await parentChain(binaries[family]), '-m', 'comment', '--comment', 'pier private ports', '-j', chain];
    const there = await exec(binaries[family], ['-w', '5', '-C', ...jump]).then(
      () => true,
      () => false,
    );
    if (!there) await exec(binaries[family], ['-w', '5', '-I', jump[0] as string, '1', ...jump.slice(1)]);
  }

  async function install(family: 4 | 6, text: string): Promise<void> {
    await restore(`${binaries[family]}-restore`, text);
    await jumpTo(family);
  }

  async function exists(): Promise<boolean> {
    for (const family of [4, 6] as const) {
      const found = await exec(binaries[family], ['-w', '5', '-S', chain]).then(
        () => true,
        () => false,
      );
      if (found) return true;
    }
    return false;
  }

  function failed(err: unknown): string {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why = e.code === 'ENOENT' ? 'iptables is not installed' : (e.stderr ?? e.message).trim().split('\n')[0];
    problem = `private networks are not enforced (every port of an instance is open to its network, and other networks reach it over IPv6): cannot write the ${chain} chain (${why}); run pier server as root (or with CAP_NET_ADMIN) with iptables installed`;
    if (!warned) log.warn({ problem }, 'private ports not enforced');
    warned = true;
    return problem;
  }

  async function apply(given: FirewallNetwork[], instances: FirewallInstance[]): Promise<string | null> {
    for (const n of given) pending.delete(n.bridge);
    for (const [bridge, at] of pending) if (Date.now() - at > PENDING_MS) pending.delete(bridge);
    const networks = [...given, ...[...pending.keys()].map((bridge) => ({ bridge }))];
    const text = [4, 6].map((f) => firewallRules(chain, f as 4 | 6, networks, instances)).join('\n');
    if (last && last.text === text && Date.now() - last.at < RECHECK_MS) return null;
    if (last && last.text === `failed:${text}` && Date.now() - last.at < RECHECK_MS) return problem;
    try {
      // No private network yet (a server that never started an instance): no chain to make, but
      // one left by an earlier run is emptied.
      // Looked for once, not at every recheck: two iptables spawns every 30 s were a large part
      // of what an idle server without private networks spent.
      if (networks.length === 0 && (absent || !(await exists()))) {
        absent = true;
        last = { text, at: Date.now() };
        markWritten();
        return null;
      }
      absent = false;
      await install(4, firewallRules(chain, 4, networks, instances));
      await install(6, firewallRules(chain, 6, networks, instances));
      const bypassed = await bridgeFilterProblem(options.bridgeSysctlDir ?? '/proc/sys/net/bridge');
      if (bypassed) {
        // Written, but the kernel does not show it bridged traffic: tried again after RECHECK_MS.
        last = { text: `failed:${text}`, at: Date.now() };
        problem = bypassed;
        if (!warned) log.warn({ problem }, 'private ports not enforced');
        warned = true;
        // Written all the same: in force for routed traffic (between networks), which those switches do not touch.
        markWritten();
        return problem;
      }
      if (!last || last.text !== text) log.info({ networks: networks.length, instances: instances.length }, 'private ports enforced');
      last = { text, at: Date.now() };
      warned = false;
      markWritten();
      return null;
    } catch (err) {
      // Tried again when what it should hold changes, or after RECHECK_MS (not every round).
      last = { text: `failed:${text}`, at: Date.now() };
      return failed(err);
    }
  }

  /**
   * Appends the new bridge's closing rules to the chain as it is (made when missing), rather than
   * rewriting it: this process may not know yet every instance the chain lets through (a server
   * just started, before its first names round), and a rewrite would cut them off.
   */
  async function close(network: FirewallNetwork): Promise<string | null> {
    pending.set(network.bridge, Date.now());
    last = null;
    absent = false;
    try {
      for (const family of [4, 6] as const) {
        await exec(binaries[family], ['-w', '5', '-N', chain]).catch(async (err: NodeJS.ErrnoException & { stderr?: string }) => {
          // Already there is what we want; anything else (no iptables, no right) is the problem.
          await exec(binaries[family], ['-w', '5', '-S', chain]).catch(() => {
            throw err;
          });
        });
        for (const rule of bridgeRules(chain, family, network.bridge)) {
          const args = rule.split(' ').slice(2);
          const there = await exec(binaries[family], ['-w', '5', '-C', chain, ...args]).then(
            () => true,
            () => false,
          );
          if (!there) await exec(binaries[family], ['-w', '5', '-A', chain, ...args]);
        }
        await jumpTo(family);
      }
      log.info({ bridge: network.bridge }, 'new private network closed until its instances are known');
      return null;
    } catch (err) {
      return failed(err);
    }
  }

  return {
    chain,
    apply: (networks, instances) => serial(() => apply(networks, instances)),
    close: (network) => serial(() => close(network)),
    written: () => firstWrite,
  };
}

/** Takes an installation's chain off the host (both families): for tests and uninstalling. */
export async function removePrivateFirewall(chain: string, binaries: { iptables?: string; ip6tables?: string } = {}): Promise<void> {
  for (const binary of [binaries.iptables ?? 'iptables', binaries.ip6tables ?? 'ip6tables']) {
    // Every copy of the jump (an interrupted install may have added two), then the chain.
    for (const parent of ['DOCKER-USER', 'FORWARD']) {
      const jump = [parent, '-m', 'comment', '--comment', 'pier private ports', '-j', chain];
      for (let i = 0; i < 8; i++) {
        const removed = await exec(binary, ['-w', '5', '-D', ...jump]).then(
          () => true,
          () => false,
        );
        if (!removed) break;
      }
    }
    await exec(binary, ['-w', '5', '-F', chain]).catch(() => undefined);
    await exec(binary, ['-w', '5', '-X', chain]).catch(() => undefined);
  }
}

/** Where the jump goes: DOCKER-USER when Docker made it (it stays ahead of Docker's rules), else FORWARD. */
async function parentChain(binary: string): Promise<string> {
  return exec(binary, ['-w', '5', '-S', 'DOCKER-USER']).then(
    () => 'DOCKER-USER',
    () => 'FORWARD',
  );
}

function restore(binary: string, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, ['-w', '5', '--noflush'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(Object.assign(new Error(`${binary} exited with ${code}`), { stderr: stderr || `${binary} exited with ${code}` }));
    });
    child.stdin.end(text);
  });
}
