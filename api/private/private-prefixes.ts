// The address ranges private networks are carved from (--private-ipv6, --private-ipv4): an IPv6
// ULA prefix (fc00::/7) split into one /64 per network, and an IPv4 range split into one /24 per
// network; network number N gets the Nth /64 and the Nth /24. Pure: parsing and arithmetic only.
import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { PierError } from '../pier-error.js';

export interface PrivatePrefixes {
  /** A ULA prefix, e.g. fd70:6965:7200::/48; each private network gets a /64 of it. */
  ipv6: string;
  /** An IPv4 range, e.g. 198.18.0.0/16; each private network gets a /24 of it. */
  ipv4: string;
}

/**
 * "pier" in hex after fd (fd70:6965:72…): a fixed ULA is fine on one host, and no LAN or cloud
 * network hands these out. For IPv4 no range is free everywhere: 198.19.0.0/16 is Pier's own
 * network, 198.18.0.0/16 serves test and lab networks, Docker's own pools take 172.17–172.31 and
 * 192.168, and CGNAT space (100.64/10) is Tailscale's; 10.210/16 is rare in LANs and cloud
 * defaults (10.0/16, 10.128/9 blocks start lower), and the start-up check catches the rest.
 */
export const DEFAULT_PRIVATE_IPV6 = 'fd70:6965:7200::/48';
export const DEFAULT_PRIVATE_IPV4 = '10.210.0.0/16';

export interface PrivateSubnets {
  ipv6: string;
  ipv4: string;
}

export function parsePrivatePrefixes(ipv6: string | undefined, ipv4: string | undefined): PrivatePrefixes {
  return { ipv6: parseIpv6Prefix(ipv6 || DEFAULT_PRIVATE_IPV6), ipv4: parseIpv4Prefix(ipv4 || DEFAULT_PRIVATE_IPV4) };
}

/** How many private networks the prefixes hold (the smaller of the two counts). */
export function privateCapacity(prefixes: PrivatePrefixes): number {
  const v6 = 64 - bitsOf(prefixes.ipv6);
  const v4 = 24 - bitsOf(prefixes.ipv4);
  return 2 ** Math.min(v6, v4, 30);
}

/** The Nth /64 and /24 of the prefixes; null past their capacity. */
export function privateSubnetsAt(prefixes: PrivatePrefixes, index: number): PrivateSubnets | null {
  if (!Number.isInteger(index) || index < 0 || index >= privateCapacity(prefixes)) return null;
  const [v6, v6Bits] = ipaddr.IPv6.parseCIDR(prefixes.ipv6);
  const high = v6.parts.slice(0, 4).reduce((acc, p) => (acc << 16n) | BigInt(p), 0n);
  // The prefix has no host bits (parsePrivatePrefixes) and index < capacity: they do not overlap.
  const base64 = (high & ~((1n << BigInt(64 - v6Bits)) - 1n)) | BigInt(index);
  const parts = [3, 2, 1, 0].map((i) => Number((base64 >> BigInt(i * 16)) & 0xffffn));
  const ipv6 = `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
  const [v4] = ipaddr.IPv4.parseCIDR(prefixes.ipv4);
  const start = v4.octets.reduce((acc, o) => acc * 256 + o, 0) + index * 256;
  const ipv4 = `${[24, 16, 8, 0].map((s) => Math.floor(start / 2 ** s) % 256).join('.')}/24`;
  return { ipv6, ipv4 };
}

/** True when two CIDR ranges of the same family share any address. */
export function rangesOverlap(a: string, b: string): boolean {
  try {
    const [addrA, bitsA] = ipaddr.parseCIDR(a);
    const [addrB, bitsB] = ipaddr.parseCIDR(b);
    if (addrA.kind() !== addrB.kind()) return false;
    const bits = Math.min(bitsA, bitsB);
    return addrA.match(addrB as never, bits);
  } catch {
    return false;
  }
}

/** A fresh random ULA /48 (RFC 4193), to suggest when the configured one clashes. */
export function randomUlaPrefix(): string {
  const b = randomBytes(5);
  const hex = (i: number) => (b[i] as number).toString(16).padStart(2, '0');
  return `${ipaddr.IPv6.parse(`fd${hex(0)}:${hex(1)}${hex(2)}:${hex(3)}${hex(4)}::`).toString()}/48`;
}

function bitsOf(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

function parseIpv6Prefix(value: string): string {
  let parsed: [ipaddr.IPv6, number] | undefined;
  try {
    const [addr, bits] = ipaddr.parseCIDR(value);
    if (addr.kind() === 'ipv6') parsed = [addr as ipaddr.IPv6, bits];
  } catch {
    parsed = undefined;
  }
  const hint = `use an IPv6 ULA prefix (inside fc00::/7) from /16 to /63 that no route or address of the host uses, e.g. ${randomUlaPrefix()} (a fresh random one) or ${DEFAULT_PRIVATE_IPV6} (the default)`;
  if (!parsed) throw new PierError('E_CONFIG_INVALID', `--private-ipv6 "${value}" is not an IPv6 prefix in CIDR form`, { status: 400, hint });
  const [addr, bits] = parsed;
  if (addr.range() !== 'uniqueLocal') throw new PierError('E_CONFIG_INVALID', `--private-ipv6 "${value}" is not a unique local (ULA, fc00::/7) prefix`, { status: 400, hint });
  if (bits < 16 || bits > 63) throw new PierError('E_CONFIG_INVALID', `--private-ipv6 "${value}" must be from /16 to /63: each private network takes a /64 of it`, { status: 400, hint });
  const network = ipaddr.IPv6.networkAddressFromCIDR(value);
  if (network.toString() !== addr.toString()) {
    throw new PierError('E_CONFIG_INVALID', `--private-ipv6 "${value}" has host bits set`, { status: 400, hint: `did you mean ${network.toString()}/${bits}?` });
  }
  return `${addr.toString()}/${bits}`;
}

function parseIpv4Prefix(value: string): string {
  const hint = `use an IPv4 range from /8 to /24 that no route or address of the host uses, e.g. ${DEFAULT_PRIVATE_IPV4} (the default); each private network takes a /24 of it`;
  let ok = false;
  try {
    const [addr, bits] = ipaddr.parseCIDR(value);
    ok = addr.kind() === 'ipv4' && bits >= 8 && bits <= 24 && ipaddr.IPv4.networkAddressFromCIDR(value).toString() === addr.toString() && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(value);
  } catch {
    ok = false;
  }
  if (!ok) throw new PierError('E_CONFIG_INVALID', `--private-ipv4 "${value}" is not an IPv4 network from /8 to /24 in CIDR form`, { status: 400, hint });
  return value;
}
