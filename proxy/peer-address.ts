// Addresses as the edge sees them: one normalised form for a socket's peer or local end (IPv4-mapped
// IPv6 turned into IPv4), and the canonical `address:port` key that identifies a listener.

import net from 'node:net';
import ipaddr from 'ipaddr.js';

export interface PeerAddress {
  /** An IPv4 or IPv6 literal, never IPv4-mapped IPv6. */
  address: string;
  port: number;
}

/** `::ffff:1.2.3.4` -> `1.2.3.4`; any other literal is returned as is. */
export function normalizeIp(address: string): string {
  // Node always reports mapped addresses as lowercase `::ffff:a.b.c.d`: the fast path.
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return address.slice(7);
  if (address.includes(':') && address.includes('.') && ipaddr.IPv6.isValid(address)) {
    const parsed = ipaddr.IPv6.parse(address);
    if (parsed.isIPv4MappedAddress()) return parsed.toIPv4Address().toString();
  }
  return address;
}

/** The one spelling of an IP literal used in keys and status: RFC 5952 for IPv6. */
export function canonicalIp(address: string): string {
  if (!address.includes(':')) return address;
  const zone = address.indexOf('%');
  const bare = zone === -1 ? address : address.slice(0, zone);
  const text = ipaddr.IPv6.parse(bare).toRFC5952String();
  return zone === -1 ? text : text + address.slice(zone);
}

/** `127.0.0.1:9000`, `[::1]:9000`. */
export function formatAddress(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The key of a listener: canonical address and port, so `::1` and `0:0::1` are the same socket. */
export function listenerKey(address: string, port: number): string {
  return formatAddress(canonicalIp(address), port);
}
