// Enforces `[[private]]`: on a private network, an instance takes new TCP connections from its
// peers only on the ports its process group offers (none for a group without `[[private]]`), and
// no UDP. Docker bridges let every container of a network reach every port of the others; the
// host filters bridged traffic (br_netfilter) in its FORWARD chain, so Pier keeps there one chain
// of its own per installation (PIER-<installation>, in iptables and ip6tables; jumped to first
// from DOCKER-USER, the chain Docker keeps ahead of its own rules, or from FORWARD where Docker
// has none: ip6tables on an engine without "ip6tables" in daemon.json. Not first in FORWARD for
// IPv4: Docker inserts each new bridge's ACCEPT rules at the top of FORWARD, ahead of any jump),
// holding, for the bridge of each private network this server knows:
//   RETURN  bridge → bridge, to an instance's address, TCP, an offered port (per instance and port)
//   REJECT  bridge → bridge, new TCP or UDP (tcp-reset / port unreachable)
// Matching the bridge rather than the subnets also closes the IPv6 link-local addresses (fe80::)
// every container has there.
// The chain is rewritten whole from current state (iptables-restore --noflush replaces only this
// chain, atomically) whenever what it should hold changes, and again every RECHECK_MS in case
// someone flushed it; nothing else of the host's rules is touched. Traffic from the host itself
// (the edge, the checks: OUTPUT, not FORWARD) and from other networks (Docker's isolation and
// ipv6-isolation.ts) is not affected. Rules outlive the server on purpose: its instances keep
// running, and keep being enforced, while it restarts.
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
}

export interface PrivateFirewall {
  /** The chain's name (the same in iptables and ip6tables). */
  readonly chain: string;
  /** Makes the chain hold exactly these networks and instances; returns why it cannot, or null. */
  apply(networks: FirewallNetwork[], instances: FirewallInstance[]): Promise<string | null>;
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

/** The iptables-restore input that makes `chain` hold the rules of one address family. */
export function firewallRules(chain: string, family: 4 | 6, networks: FirewallNetwork[], instances: FirewallInstance[]): string {
  const host = family === 4 ? '/32' : '/128';
  const lines = ['*filter', `:${chain} - [0:0]`];
  // Replies and connections already open are left alone (a port no longer offered does not cut them).
  lines.push(`-A ${chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
  for (const inst of instances) {
    const address = family === 4 ? inst.ipv4 : inst.ipv6;
    if (!address) continue;
    for (const port of [...new Set(inst.ports)].sort((a, b) => a - b)) {
      lines.push(`-A ${chain} -i ${inst.network.bridge} -o ${inst.network.bridge} -d ${address}${host} -p tcp -m tcp --dport ${port} -j RETURN`);
    }
  }
  const seen = new Set<string>();
  for (const n of networks) {
    const b = n.bridge;
    if (seen.has(b)) continue;
    seen.add(b);
    lines.push(`-A ${chain} -i ${b} -o ${b} -p tcp -m conntrack --ctstate NEW -j REJECT --reject-with tcp-reset`);
    lines.push(`-A ${chain} -i ${b} -o ${b} -p udp -m conntrack --ctstate NEW -j REJECT --reject-with ${family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

export function createPrivateFirewall(options: PrivateFirewallOptions): PrivateFirewall {
  const chain = privateFirewallChain(options.installationId);
  const log = options.log.child({ component: 'private-firewall', chain });
  const binaries = { 4: options.iptables ?? 'iptables', 6: options.ip6tables ?? 'ip6tables' } as const;
  let last: { text: string; at: number } | null = null;
  let warned = false;
  let problem: string | null = null;

  async function install(family: 4 | 6, text: string): Promise<void> {
    await restore(`${binaries[family]}-restore`, text);
    const jump = [await parentChain(binaries[family]), '-m', 'comment', '--comment', 'pier private ports', '-j', chain];
    const there = await exec(binaries[family], ['-w', '5', '-C', ...jump]).then(
      () => true,
      () => false,
    );
    if (!there) await exec(binaries[family], ['-w', '5', '-I', jump[0] as string, '1', ...jump.slice(1)]);
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

  return {
    chain,
    async apply(networks, instances) {
      const text = [4, 6].map((f) => firewallRules(chain, f as 4 | 6, networks, instances)).join('\n');
      if (last && last.text === text && Date.now() - last.at < RECHECK_MS) return null;
      if (last && last.text === `failed:${text}` && Date.now() - last.at < RECHECK_MS) return problem;
      try {
        // No private network yet (a server that never started an instance): no chain to make, but
        // one left by an earlier run is emptied.
        if (networks.length === 0 && !(await exists())) {
          last = { text, at: Date.now() };
          return null;
        }
        await install(4, firewallRules(chain, 4, networks, instances));
        await install(6, firewallRules(chain, 6, networks, instances));
        const bypassed = await bridgeFilterProblem(options.bridgeSysctlDir ?? '/proc/sys/net/bridge');
        if (bypassed) {
          // Written, but the kernel does not show it bridged traffic: tried again after RECHECK_MS.
          last = { text: `failed:${text}`, at: Date.now() };
          problem = bypassed;
          if (!warned) log.warn({ problem }, 'private ports not enforced');
          warned = true;
          return problem;
        }
        if (!last || last.text !== text) log.info({ networks: networks.length, instances: instances.length }, 'private ports enforced');
        last = { text, at: Date.now() };
        warned = false;
        return null;
      } catch (err) {
        // Tried again when what it should hold changes, or after RECHECK_MS (not every round).
        last = { text: `failed:${text}`, at: Date.now() };
        const e = err as NodeJS.ErrnoException & { stderr?: string };
        const why = e.code === 'ENOENT' ? 'iptables is not installed' : (e.stderr ?? e.message).trim().split('\n')[0];
        problem = `private ports are not enforced (every port of an instance is open to its network): cannot write the ${chain} chain (${why}); run pier server as root (or with CAP_NET_ADMIN) with iptables installed`;
        if (!warned) log.warn({ problem }, 'private ports not enforced');
        warned = true;
        return problem;
      }
    },
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
