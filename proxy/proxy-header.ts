// PROXY protocol headers for backends (haproxy doc/proxy-protocol.txt): v1 is one text line, v2 a
// binary block. Built by hand into one Buffer per connection, written as the backend's first bytes.

import net from 'node:net';
import ipaddr from 'ipaddr.js';
import type { ProxyProtocolMode } from './edge-config.js';
import type { PeerAddress } from './peer-address.js';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY_COMMAND = 0x21; // version 2, PROXY
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;

/**
 * The header announcing a connection from `src` to `dst` (both normalised, see normalizeIp), or
 * null for mode 'none'. A mixed IPv4/IPv6 pair is sent as IPv6 with the IPv4 side mapped, as
 * HAProxy does, because both formats require one family for both ends.
 */
export function buildProxyHeader(mode: ProxyProtocolMode, src: PeerAddress, dst: PeerAddress): Buffer | null {
  if (mode === 'none') return null;
  const v4 = net.isIPv4(src.address) && net.isIPv4(dst.address);
  return mode === 'v2' ? buildV2(v4, src, dst) : buildV1(v4, src, dst);
}

function buildV1(v4: boolean, src: PeerAddress, dst: PeerAddress): Buffer {
  const family = v4 ? 'TCP4' : 'TCP6';
  const s = v4 ? src.address : asIPv6Text(src.address);
  const d = v4 ? dst.address : asIPv6Text(dst.address);
  return Buffer.from(`PROXY ${family} ${s} ${d} ${src.port} ${dst.port}\r\n`, 'latin1');
}

function buildV2(v4: boolean, src: PeerAddress, dst: PeerAddress): Buffer {
  const addressLength = v4 ? 12 : 36;
  const header = Buffer.allocUnsafe(16 + addressLength);
  V2_SIGNATURE.copy(header, 0);
  header[12] = V2_PROXY_COMMAND;
  header[13] = v4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(addressLength, 14);
  if (v4) {
    writeIPv4(header, 16, src.address);
    writeIPv4(header, 20, dst.address);
    header.writeUInt16BE(src.port, 24);
    header.writeUInt16BE(dst.port, 26);
  } else {
    writeIPv6(header, 16, src.address);
    writeIPv6(header, 32, dst.address);
    header.writeUInt16BE(src.port, 48);
    header.writeUInt16BE(dst.port, 50);
  }
  return header;
}

/** Dotted quad into 4 bytes; the input is a valid IPv4 literal (net.isIPv4 checked it). */
function writeIPv4(buf: Buffer, offset: number, address: string): void {
  let value = 0;
  let at = offset;
  for (let i = 0; i < address.length; i++) {
    const code = address.charCodeAt(i);
    if (code === 0x2e) {
      buf[at++] = value;
      value = 0;
    } else {
      value = value * 10 + (code - 0x30);
    }
  }
  buf[at] = value;
}

function writeIPv6(buf: Buffer, offset: number, address: string): void {
  if (net.isIPv4(address)) {
    buf.fill(0, offset, offset + 10);
    buf[offset + 10] = 0xff;
    buf[offset + 11] = 0xff;
    writeIPv4(buf, offset + 12, address);
    return;
  }
  const zone = address.indexOf('%');
  const bytes = ipaddr.IPv6.parse(zone === -1 ? address : address.slice(0, zone)).toByteArray();
  for (let i = 0; i < 16; i++) buf[offset + i] = bytes[i] ?? 0;
}

function asIPv6Text(address: string): string {
  if (net.isIPv4(address)) return `::ffff:${address}`;
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}
