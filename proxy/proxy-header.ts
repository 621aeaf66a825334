// PROXY protocol headers for backends (haproxy doc/proxy-protocol.txt): v1 is one text line, v2 a
// binary block. Built by hand into one Buffer per connection, together with the client's first
// bytes when there are some, and written as the backend's first bytes.

import { randomBytes } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { crc32c } from './crc32c.js';
import type { ProxyProtocolMode } from './edge-config.js';
import type { PeerAddress } from './peer-address.js';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PROXY_COMMAND = 0x21; // version 2, PROXY
const V2_TCP4 = 0x11;
const V2_TCP6 = 0x21;
const TLV_AUTHORITY = 0x02;
const TLV_CRC32C = 0x03;
const TLV_UNIQUE_ID = 0x05;
const AUTHORITY_MAX = 255;

/** Optional v2 TLVs; v1 has no room for them and ignores them. */
export interface ProxyHeaderTlvs {
  /** The host name the client asked for (SNI); omitted when null. */
  authority?: string | null;
  uniqueId?: Buffer | null;
  crc32c?: boolean;
  /** TLVs already encoded (tls/tls-tlvs.ts: ALPN, SSL), written before the CRC32C. */
  extra?: Buffer | null;
}

// A per-process random prefix and a counter: unique across workers and restarts, no syscall per id.
const UNIQUE_PREFIX = randomBytes(8);
let uniqueCounter = 0;

/** 16 bytes naming one connection: 8 random bytes fixed per process, then a 64-bit counter. */
export function nextUniqueId(): Buffer {
  const id = Buffer.allocUnsafe(16);
  UNIQUE_PREFIX.copy(id, 0);
  uniqueCounter++;
  id.writeUInt32BE(Math.floor(uniqueCounter / 0x1_0000_0000), 8);
  id.writeUInt32BE(uniqueCounter >>> 0, 12);
  return id;
}

/**
 * The header announcing a connection from `src` to `dst` (both normalised, see normalizeIp), or
 * null for mode 'none'. A mixed IPv4/IPv6 pair is sent as IPv6 with the IPv4 side mapped, as
 * HAProxy does, because both formats require one family for both ends. `payload` (the client's
 * first bytes) is copied in right after the header, so both leave in one write from one buffer.
 */
export function buildProxyHeader(
  mode: ProxyProtocolMode,
  src: PeerAddress,
  dst: PeerAddress,
  tlvs?: ProxyHeaderTlvs,
  payload?: Buffer | null,
): Buffer | null {
  if (mode === 'none') return null;
  // Normalised literals: only IPv6 ones contain a colon.
  const v4 = !src.address.includes(':') && !dst.address.includes(':');
  return mode === 'v2' ? buildV2(v4, src, dst, tlvs, payload ?? null) : buildV1(v4, src, dst, payload ?? null);
}

function buildV1(v4: boolean, src: PeerAddress, dst: PeerAddress, payload: Buffer | null): Buffer {
  const family = v4 ? 'TCP4' : 'TCP6';
  const s = v4 ? src.address : asIPv6Text(src.address);
  const d = v4 ? dst.address : asIPv6Text(dst.address);
  const line = `PROXY ${family} ${s} ${d} ${src.port} ${dst.port}\r\n`;
  if (payload === null) return Buffer.from(line, 'latin1');
  const out = Buffer.allocUnsafe(line.length + payload.length);
  out.write(line, 0, 'latin1');
  payload.copy(out, line.length);
  return out;
}

function buildV2(v4: boolean, src: PeerAddress, dst: PeerAddress, tlvs: ProxyHeaderTlvs | undefined, payload: Buffer | null): Buffer {
  const addressLength = v4 ? 12 : 36;
  const authority = tlvs?.authority ?? null;
  const authorityLength = authority === null ? 0 : Math.min(Buffer.byteLength(authority), AUTHORITY_MAX);
  const uniqueId = tlvs?.uniqueId ?? null;
  const extra = tlvs?.extra ?? null;
  const tlvLength =
    (authority === null ? 0 : 3 + authorityLength) + (uniqueId === null ? 0 : 3 + uniqueId.length) + (extra === null ? 0 : extra.length) + (tlvs?.crc32c ? 7 : 0);
  const headerLength = 16 + addressLength + tlvLength;
  const header = Buffer.allocUnsafe(headerLength + (payload === null ? 0 : payload.length));
  V2_SIGNATURE.copy(header, 0);
  header[12] = V2_PROXY_COMMAND;
  header[13] = v4 ? V2_TCP4 : V2_TCP6;
  header.writeUInt16BE(addressLength + tlvLength, 14);
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
  if (tlvLength > 0) writeTlvs(header, 16 + addressLength, headerLength, authority, authorityLength, uniqueId, extra, tlvs?.crc32c === true);
  if (payload !== null) payload.copy(header, headerLength);
  return header;
}

function writeTlvs(
  header: Buffer,
  from: number,
  headerLength: number,
  authority: string | null,
  authorityLength: number,
  uniqueId: Buffer | null,
  extra: Buffer | null,
  crc: boolean,
): void {
  let at = from;
  if (authority !== null) {
    header[at] = TLV_AUTHORITY;
    header.writeUInt16BE(authorityLength, at + 1);
    header.write(authority, at + 3, authorityLength, 'utf8');
    at += 3 + authorityLength;
  }
  if (uniqueId !== null) {
    header[at] = TLV_UNIQUE_ID;
    header.writeUInt16BE(uniqueId.length, at + 1);
    uniqueId.copy(header, at + 3);
    at += 3 + uniqueId.length;
  }
  if (extra !== null) {
    extra.copy(header, at);
    at += extra.length;
  }
  if (crc) {
    // Last, so the checksum (over the whole header with its own field zeroed) covers everything.
    header[at] = TLV_CRC32C;
    header.writeUInt16BE(4, at + 1);
    header.writeUInt32BE(0, at + 3);
    header.writeUInt32BE(crc32c(header.subarray(0, headerLength)), at + 3);
  }
}

/** Dotted quad into 4 bytes; the input is a valid IPv4 literal (validated with the snapshot or read from a socket). */
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
  if (!address.includes(':')) {
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
  if (!address.includes(':')) return `::ffff:${address}`;
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}
