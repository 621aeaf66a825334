// An address pool the server gives dedicated addresses from (`pier server --ip-pool CIDR`,
// PIER_IP_POOLS): parsing, the n-th usable address, and membership. Pure: api/ip-service.ts does
// the allocating. Addresses are numbers (bigint, so IPv6 /64 pools work) counted from the first
// usable one: IPv4 pools skip the network and broadcast addresses (except /31 and /32), IPv6 pools
// skip the subnet-router anycast address (the prefix itself).
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { IpFamily } from '../db/schema/index.js';
import { PierError } from './pier-error.js';

export interface IpPool {
  /** Canonical CIDR, e.g. "127.77.0.0/24", "fd00:1::/64". */
  cidr: string;
  family: IpFamily;
  /** The first usable address as a number. */
  first: bigint;
  /** How many usable addresses it holds. */
  size: bigint;
}

/** Parses one CIDR; throws E_CONFIG_INVALID saying what is wrong and what to write. */
export function parseIpPool(text: string): IpPool {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  const [literal = '', bitsText] = text.trim().split('/');
  if (isIP(literal) === 0 || bitsText === undefined) throw invalid(`"${text}" is not an address range in CIDR form`);
  try {
    parsed = ipaddr.parseCIDR(text.trim());
  } catch {
    throw invalid(`"${text}" is not an address range in CIDR form`);
  }
  const [addr, bits] = parsed;
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) throw invalid(`"${text}" is an IPv4-mapped IPv6 range: write the IPv4 range instead`);
  const width = addr.kind() === 'ipv4' ? 32 : 128;
  const base = toNumber(addr.toByteArray());
  const hostBits = BigInt(width - bits);
  const network = (base >> hostBits) << hostBits;
  if (network !== base) throw invalid(`"${text}" has host bits set: the network is ${fromNumber(network, width)}/${bits}`);
  const total = 1n << hostBits;
  const family: IpFamily = addr.kind() === 'ipv4' ? 'ipv4' : 'ipv6';
  // IPv4: no network or broadcast address below /31; IPv6: not the subnet-router anycast (the prefix).
  const skipFirst = family === 'ipv4' ? bits <= 30 : bits <= 126;
  const skipLast = family === 'ipv4' && bits <= 30;
  return {
    cidr: `${fromNumber(network, width)}/${bits}`,
    family,
    first: network + (skipFirst ? 1n : 0n),
    size: total - (skipFirst ? 1n : 0n) - (skipLast ? 1n : 0n),
  };
}

/** Parses every pool and refuses overlapping ones and ones that hold a shared address. */
export function parseIpPools(texts: string[], shared: string[]): IpPool[] {
  const pools = texts.map(parseIpPool);
  for (const [i, a] of pools.entries()) {
    for (const b of pools.slice(i + 1)) {
      if (a.family === b.family && (contains(a, rangeStart(b)) || contains(b, rangeStart(a)))) throw invalid(`the pools ${a.cidr} and ${b.cidr} overlap`);
    }
    for (const s of shared) {
      if (contains(a, s)) throw invalid(`the pool ${a.cidr} holds the shared address ${s}, which every app is served on`);
    }
  }
  return pools;
}

/** The `index`-th usable address of the pool (0-based), in canonical form. */
export function addressAt(pool: IpPool, index: bigint): string {
  if (index < 0n || index >= pool.size) throw new RangeError(`${index} is outside ${pool.cidr}`);
  return fromNumber(pool.first + index, pool.family === 'ipv4' ? 32 : 128);
}

/** The index of an address in the pool, or null when it is not one of its usable addresses. */
export function indexOf(pool: IpPool, address: string): bigint | null {
  const n = numberOf(address, pool.family);
  if (n === null) return null;
  const i = n - pool.first;
  return i >= 0n && i < pool.size ? i : null;
}

export function contains(pool: IpPool, address: string): boolean {
  const n = numberOf(address, pool.family);
  if (n === null) return false;
  const [net, bits] = pool.cidr.split('/') as [string, string];
  const hostBits = BigInt((pool.family === 'ipv4' ? 32 : 128) - Number(bits));
  return n >> hostBits === (numberOf(net, pool.family) as bigint) >> hostBits;
}

/** The canonical text of an address literal (RFC 5952 for IPv6), or null when it is not one. */
export function canonicalAddress(text: string): { address: string; family: IpFamily } | null {
  // net.isIP: ipaddr.js also takes the old classful forms ("127.0.0"), which are not literals.
  if (isIP(text) === 0) return null;
  const a = ipaddr.parse(text);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return { address: (a as ipaddr.IPv6).toIPv4Address().toString(), family: 'ipv4' };
  return { address: a.toString(), family: a.kind() === 'ipv4' ? 'ipv4' : 'ipv6' };
}

function rangeStart(pool: IpPool): string {
  return pool.cidr.split('/')[0] as string;
}

function numberOf(address: string, family: IpFamily): bigint | null {
  const c = canonicalAddress(address);
  if (!c || c.family !== family) return null;
  return toNumber(ipaddr.parse(c.address).toByteArray());
}

function toNumber(bytes: number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function fromNumber(n: bigint, width: number): string {
  const bytes: number[] = [];
  for (let i = width / 8 - 1; i >= 0; i--) bytes.push(Number((n >> BigInt(i * 8)) & 0xffn));
  return ipaddr.fromByteArray(bytes).toString();
}

function invalid(message: string): PierError {
  return new PierError('E_CONFIG_INVALID', `ip pool: ${message}`, {
    status: 400,
    hint: 'pass --ip-pool CIDR (repeatable) or PIER_IP_POOLS="CIDR,CIDR", e.g. 203.0.113.0/28 or 2001:db8:1::/64',
  });
}
