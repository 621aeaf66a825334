// Takes out of the host's ip6tables FORWARD chain the per-/64 isolation rules that earlier Pier
// versions inserted there (one per private network, never removed, so they piled up); the
// installation's own chain (private-firewall.ts) does that job now, rewritten whole. A rule is
// removed only when it is exactly the shape those versions wrote:
//   -A FORWARD ! -s SUBNET -d SUBNET -m conntrack --ctstate NEW -m comment --comment "pier private network" -j DROP
// with SUBNET inside this installation's IPv6 prefix and not the subnet of a network another
// installation holds on the engine (that one, if it still runs an older Pier, relies on its rule).
// Anything else in FORWARD, Pier's or not, is left alone. The server calls it only once the chain
// is written (private-firewall.ts written()): till then these rules are the IPv6 isolation in force.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import ipaddr from 'ipaddr.js';
import { rangesOverlap } from './private-prefixes.js';

const exec = promisify(execFile);

const LEGACY = /^-A FORWARD ! -s (\S+) -d (\S+) -m conntrack --ctstate NEW -m comment --comment "pier private network" -j DROP$/;

export interface LegacyIsolationOptions {
  /** This installation's IPv6 prefix (--private-ipv6). */
  prefix: string;
  /** IPv6 subnets of private networks other installations hold on the engine. */
  foreign: ReadonlySet<string>;
  log: Logger;
  /** The binary (default ip6tables). */
  binary?: string | undefined;
}

/** The old rules of this installation in a `-S FORWARD` listing, as their subnets. */
export function legacyIsolationSubnets(listing: string, prefix: string, foreign: ReadonlySet<string>): string[] {
  const others = new Set([...foreign].map(canonical));
  const out: string[] = [];
  for (const line of listing.split('\n')) {
    const m = LEGACY.exec(line.trim());
    if (!m || m[1] !== m[2]) continue;
    const subnet = m[1] as string;
    if (!/\/64$/.test(subnet) || others.has(canonical(subnet)) || !rangesOverlap(subnet, prefix)) continue;
    out.push(subnet);
  }
  return out;
}

/** Removes them; returns how many went. Never throws: an old rule left only keeps a network closed. */
export async function removeLegacyIsolation(options: LegacyIsolationOptions): Promise<number> {
  const binary = options.binary ?? 'ip6tables';
  try {
    const { stdout } = await exec(binary, ['-w', '5', '-S', 'FORWARD']);
    const subnets = legacyIsolationSubnets(stdout, options.prefix, options.foreign);
    for (const subnet of subnets) {
      await exec(binary, ['-w', '5', '-D', 'FORWARD', '!', '-s', subnet, '-d', subnet, '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'pier private network', '-j', 'DROP']);
    }
    if (subnets.length) options.log.info({ removed: subnets.length }, 'old per-network ipv6 isolation rules removed from FORWARD (the installation chain holds them now)');
    return subnets.length;
  } catch (err) {
    options.log.warn({ err }, 'old ipv6 isolation rules not removed from FORWARD; tried again at the next start');
    return 0;
  }
}

/** One spelling per subnet (fd00:00a0::/64 and fd00:a0::/64 are the same; ip6tables prints the short one). */
function canonical(cidr: string): string {
  try {
    const [address, bits] = ipaddr.parseCIDR(cidr);
    return `${address.toString()}/${bits}`;
  } catch {
    return cidr;
  }
}
