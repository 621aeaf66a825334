// The host's routes and addresses, read from /proc and the interfaces, so a private prefix that
// would clash with them is refused at start (E_PRIVATE_PREFIX_CLASH) instead of black-holing
// traffic. Routes on Pier's own private bridges are expected inside the prefix and ignored.
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { PierError } from '../pier-error.js';
import { randomUlaPrefix, rangesOverlap, type PrivatePrefixes } from './private-prefixes.js';

export interface HostRoute {
  /** CIDR, e.g. 192.0.2.0/24 or fd00::/64. */
  prefix: string;
  /** The interface it goes through (or that holds the address). */
  iface: string;
}

export async function readHostRoutes(): Promise<HostRoute[]> {
  const out: HostRoute[] = [];
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.cidr) out.push({ prefix: a.cidr, iface });
  }
  const v4 = await readFile('/proc/net/route', 'utf8').catch(() => '');
  for (const line of v4.split('\n').slice(1)) {
    const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (!iface || !dest || !mask) continue;
    const bits = ipaddr.IPv4.parse(littleEndianIpv4(mask)).prefixLengthFromSubnetMask() ?? 32;
    out.push({ prefix: `${littleEndianIpv4(dest)}/${bits}`, iface });
  }
  const v6 = await readFile('/proc/net/ipv6_route', 'utf8').catch(() => '');
  for (const line of v6.split('\n')) {
    const f = line.trim().split(/\s+/);
    const dest = f[0];
    const iface = f[9];
    if (!dest || dest.length !== 32 || !iface) continue;
    const address = (dest.match(/.{4}/g) ?? []).join(':');
    out.push({ prefix: `${ipaddr.IPv6.parse(address).toString()}/${parseInt(f[1] ?? '80', 16)}`, iface });
  }
  return out;
}

/**
 * The routes and addresses that overlap a private prefix, except default routes, link-local and
 * multicast ones, and those on interfaces in `ignore` (Pier's private bridges).
 */
export function privateClashes(prefixes: PrivatePrefixes, routes: HostRoute[], ignore: ReadonlySet<string>): HostRoute[] {
  const inside = (r: HostRoute) => rangesOverlap(r.prefix, prefixes.ipv6) || rangesOverlap(r.prefix, prefixes.ipv4);
  // A Docker bridge (br-…) whose every route lies inside the prefixes is a private network of a
  // Pier on this host whose engine this server does not see (another installation's, an engine in
  // a namespace): never a route of the host's own network.
  const piers = new Set(
    [...new Set(routes.filter((r) => /^br-[0-9a-f]{12}$/.test(r.iface)).map((r) => r.iface))].filter((iface) =>
      routes.filter((r) => r.iface === iface && !/^fe80:/i.test(r.prefix) && !/^ff00:/i.test(r.prefix)).every(inside),
    ),
  );
  return routes.filter((r) => {
    if (ignore.has(r.iface) || piers.has(r.iface) || /\/0$/.test(r.prefix)) return false;
    return inside(r);
  });
}

export function prefixClashError(prefixes: PrivatePrefixes, clashes: HostRoute[]): PierError {
  const listed = clashes.slice(0, 5).map((c) => `${c.prefix} on ${c.iface}`).join(', ');
  const v6 = clashes.some((c) => c.prefix.includes(':'));
  const v4 = clashes.some((c) => !c.prefix.includes(':'));
  const fixes = [v6 ? `--private-ipv6 ${randomUlaPrefix()} (a fresh random ULA prefix)` : null, v4 ? '--private-ipv4 RANGE (a /16 no route uses)' : null].filter(Boolean);
  return new PierError(
    'E_PRIVATE_PREFIX_CLASH',
    `the private network prefixes ${prefixes.ipv6} and ${prefixes.ipv4} clash with the host's routes or addresses: ${listed}`,
    { status: 409, hint: `start pier server with ${fixes.join(' and ')}, or the PIER_PRIVATE_IPV6 / PIER_PRIVATE_IPV4 variables`, details: { clashes } },
  );
}

/** The Linux bridge device of a Docker bridge network (its default name). */
export function bridgeName(networkId: string): string {
  return `br-${networkId.slice(0, 12)}`;
}

function littleEndianIpv4(hex: string): string {
  const n = parseInt(hex, 16);
  return [0, 8, 16, 24].map((s) => (n >>> s) & 255).join('.');
}
