// PROXY v2 headers for the reader's tests: addresses built by proxy-protocol-js, and TLVs appended by
// hand because the library's `data` argument does not count in `len` (proxy-anchors.md §2, bug 1).

import net from 'node:net';
import ipaddr from 'ipaddr.js';
import {
  Command,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  TransportProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { crc32c } from '../../proxy/crc32c.js';

/** A v2 PROXY header (TCP over IPv4 when both addresses are IPv4, else IPv6) without TLVs. */
export function v2Header(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const address =
    net.isIPv4(src) && net.isIPv4(dst)
      ? new IPv4ProxyAddress(v4(src), srcPort, v4(dst), dstPort)
      : new IPv6ProxyAddress(v6(src), srcPort, v6(dst), dstPort);
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build());
}

export function tlv(type: number, value: Uint8Array): Buffer {
  const head = Buffer.from([type, 0, 0]);
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

/** `header` followed by `tlvs`, with `len` (bytes 14-15) patched to cover them. */
export function withTlvs(header: Uint8Array, tlvs: Uint8Array[]): Buffer {
  const out = Buffer.concat([header, ...tlvs]);
  out.writeUInt16BE(out.length - 16, 14);
  return out;
}

/** `header` with a CRC32C TLV appended last, computed over the whole result with its field zeroed. */
export function withCrc32c(header: Uint8Array): Buffer {
  const out = withTlvs(header, [tlv(0x03, new Uint8Array(4))]);
  out.writeUInt32BE(crc32c(out), out.length - 4);
  return out;
}

function v4(address: string): IPv4Address {
  return IPv4Address.createFrom(ipaddr.IPv4.parse(address).toByteArray() as [number, number, number, number]);
}

function v6(address: string): IPv6Address {
  const parsed = net.isIPv4(address) ? ipaddr.IPv4.parse(address).toIPv4MappedAddress() : ipaddr.IPv6.parse(address);
  return IPv6Address.createFrom(parsed.toByteArray() as Parameters<typeof IPv6Address.createFrom>[0]);
}
