// A set of IPv4 and IPv6 ranges parsed once, at config time, and matched per connection against a
// client address (trusted proxies, allow and deny lists). IPv4-mapped IPv6 counts as IPv4 both ways.

import net from 'node:net';
import ipaddr from 'ipaddr.js';

type Range4 = [ipaddr.IPv4, number];
type Range6 = [ipaddr.IPv6, number];

export class CidrList {
  static readonly empty = new CidrList([], []);

  private constructor(
    private readonly v4: readonly Range4[],
    private readonly v6: readonly Range6[],
  ) {}

  /** Parses every entry (`10.0.0.0/8`, `::1`, `::ffff:10.0.0.0/104`); throws naming the first bad one. */
  static parse(entries: readonly string[]): CidrList {
    if (entries.length === 0) return CidrList.empty;
    const v4: Range4[] = [];
    const v6: Range6[] = [];
    for (const entry of entries) {
      const range = parseCidr(entry);
      if (typeof range === 'string') throw new Error(range);
      if (range[0].kind() === 'ipv4') v4.push(range as Range4);
      else v6.push(range as Range6);
    }
    return new CidrList(v4, v6);
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  /** Whether `address` (an IP literal as a socket or PROXY header reports it) is in any range. */
  has(address: string): boolean {
    if (net.isIPv4(address)) {
      if (this.v4.length === 0) return false;
      const ip = ipaddr.IPv4.parse(address);
      for (const [base, bits] of this.v4) if (ip.match(base, bits)) return true;
      return false;
    }
    if (!ipaddr.IPv6.isValid(address)) return false;
    const ip = ipaddr.IPv6.parse(address);
    if (ip.isIPv4MappedAddress()) return this.has(ip.toIPv4Address().toString());
    if (this.v6.length === 0) return false;
    for (const [base, bits] of this.v6) if (ip.match(base, bits)) return true;
    return false;
  }
}

/** One range, or a sentence saying why `entry` is not one. Mapped IPv6 ranges become IPv4 ranges. */
export function parseCidr(entry: unknown): [ipaddr.IPv4 | ipaddr.IPv6, number] | string {
  if (typeof entry !== 'string') return `${JSON.stringify(entry)} is not a CIDR string`;
  try {
    const range: [ipaddr.IPv4 | ipaddr.IPv6, number] = entry.includes('/')
      ? ipaddr.parseCIDR(entry)
      : (() => {
          const ip = ipaddr.parse(entry);
          return [ip, ip.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number];
        })();
    const [ip, bits] = range;
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(ip as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    // ipaddr accepts `10.1` and friends; only full literals are meant here.
    const text = entry.split('/')[0]!;
    if (net.isIP(text) === 0) return `"${entry}" is not a CIDR (write e.g. 10.0.0.0/8 or fd00::/8)`;
    return range;
  } catch {
    return `"${entry}" is not a CIDR (write e.g. 10.0.0.0/8 or fd00::/8)`;
  }
}
