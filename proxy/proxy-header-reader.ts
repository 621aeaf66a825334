// Strict inbound PROXY protocol reader (haproxy doc/proxy-protocol.txt, v1 and v2): a pure function
// of the bytes received so far. The connection code owns the socket, the buffering and the timeout;
// it calls this after each chunk until the result is 'done' or 'invalid'.

import net from 'node:net';
import { crc32c } from './crc32c.js';

/** How long a connection may take to send its header; the spec asks for at least 3 s. */
export const PROXY_HEADER_TIMEOUT_MS = 5000;
/** Largest header accepted by default: a v2 header's 16 + len (a v1 line is at most 107 bytes anyway). */
export const DEFAULT_PROXY_HEADER_MAX_BYTES = 4096;

export interface ProxyHeaderEndpoint {
  /** IPv4 dotted quad or compressed lowercase IPv6 (IPv4-mapped turned into IPv4); a path for unix. */
  address: string;
  /** 0 for unix sockets, which have none. */
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** 'local' (v2 LOCAL, v1 UNKNOWN) has no addresses: use the socket's own. So has 'proxy' with family 'unspec'. */
  command: 'proxy' | 'local';
  family: 'tcp4' | 'tcp6' | 'unix' | 'unspec';
  source?: ProxyHeaderEndpoint;
  destination?: ProxyHeaderEndpoint;
  /** Every v2 TLV except NOOP, in order, values copied out of the input. */
  tlvs: { type: number; value: Buffer }[];
  authority?: string;
  uniqueId?: Buffer;
}

export type ProxyHeaderInvalidReason =
  | 'not a PROXY header'
  | 'unsupported version'
  | 'bad command'
  | 'bad family'
  | 'unsupported family'
  | 'length exceeds cap'
  | 'truncated address block'
  | 'TLV overruns header'
  | 'duplicate TLV'
  | 'bad CRC32C TLV'
  | 'CRC32C mismatch'
  | 'bad authority'
  | 'unique id too long'
  | 'v1 line too long'
  | 'v1 bad line ending'
  | 'v1 bad character'
  | 'v1 bad protocol'
  | 'v1 bad address'
  | 'v1 bad port';

export type ReadResult =
  | { state: 'incomplete' }
  | { state: 'done'; header: ProxyHeader; consumed: number }
  | { state: 'invalid'; reason: ProxyHeaderInvalidReason };

export interface ReadProxyHeaderOptions {
  /** Largest header accepted, 16..65551 bytes; default 4096. Applies to v1 lines too, below 107. */
  maxBytes?: number;
}

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
const V1_MAX_LINE = 107;
const V2_MAX_TOTAL = 16 + 0xffff;
const CR = 0x0d;
const LF = 0x0a;

const TLV_AUTHORITY = 0x02;
const TLV_CRC32C = 0x03;
const TLV_NOOP = 0x04;
const TLV_UNIQUE_ID = 0x05;
const UNIQUE_ID_MAX = 128;

const INCOMPLETE: ReadResult = Object.freeze({ state: 'incomplete' });
const invalidResults = new Map<ProxyHeaderInvalidReason, ReadResult>();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const FOUR_ZEROS = new Uint8Array(4);
const PORT_TEXT = /^(?:0|[1-9][0-9]{0,4})$/;

/**
 * Reads a PROXY header at the start of `buf`. 'incomplete' means every byte so far fits a header:
 * call again with more. On 'done', bytes from `consumed` on are the client's payload, untouched.
 * Never throws for any input; throws a RangeError for a maxBytes outside 16..65551.
 */
export function readProxyHeader(buf: Buffer, options?: ReadProxyHeaderOptions): ReadResult {
  const maxBytes = options?.maxBytes ?? DEFAULT_PROXY_HEADER_MAX_BYTES;
  if (!Number.isInteger(maxBytes) || maxBytes < 16 || maxBytes > V2_MAX_TOTAL) {
    throw new RangeError(`maxBytes must be an integer from 16 to ${V2_MAX_TOTAL}, got ${maxBytes}`);
  }
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V2_SIGNATURE[0]) return readV2(buf, maxBytes);
  if (buf[0] === V1_PREFIX[0]) return readV1(buf, Math.min(V1_MAX_LINE, maxBytes));
  return invalid('not a PROXY header');
}

function readV2(buf: Buffer, maxBytes: number): ReadResult {
  const n = buf.length;
  for (let i = 1; i < 12 && i < n; i++) if (buf[i] !== V2_SIGNATURE[i]) return invalid('not a PROXY header');
  if (n < 13) return INCOMPLETE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid('unsupported version');
  const command = verCmd & 0x0f;
  if (command > 1) return invalid('bad command');
  if (n < 14) return INCOMPLETE;
  const fam = buf[13]!;
  const addressLength = addressLengthOf(fam);
  if (addressLength < 0) return invalid('bad family');
  // A datagram header says nothing true about a TCP connection; LOCAL ignores the family anyway.
  if (command === 1 && (fam & 0x0f) === 2) return invalid('unsupported family');
  if (n < 16) return INCOMPLETE;
  const length = buf.readUInt16BE(14);
  const total = 16 + length;
  if (total > maxBytes) return invalid('length exceeds cap');
  if (command === 1 && length < addressLength) return invalid('truncated address block');
  if (n < total) return INCOMPLETE;
  if (command === 0) {
    // LOCAL: the spec says to discard the whole block, family included, and keep the real endpoints.
    return { state: 'done', header: { version: 2, command: 'local', family: 'unspec', tlvs: [] }, consumed: total };
  }
  const header: ProxyHeader = { version: 2, command: 'proxy', family: familyName(fam), tlvs: [] };
  if (fam === 0x11) {
    header.source = { address: formatIPv4(buf, 16), port: buf.readUInt16BE(24) };
    header.destination = { address: formatIPv4(buf, 20), port: buf.readUInt16BE(26) };
  } else if (fam === 0x21) {
    header.source = { address: formatIPv6(buf, 16), port: buf.readUInt16BE(48) };
    header.destination = { address: formatIPv6(buf, 32), port: buf.readUInt16BE(50) };
  } else if (fam === 0x31) {
    header.source = { address: unixPath(buf, 16), port: 0 };
    header.destination = { address: unixPath(buf, 124), port: 0 };
  }
  const reason = readTlvs(buf, 16 + addressLength, total, header);
  return reason === null ? { state: 'done', header, consumed: total } : invalid(reason);
}

/** Walks the TLVs in [from, total) into `header`; returns why they are invalid, or null. */
function readTlvs(buf: Buffer, from: number, total: number, header: ProxyHeader): ProxyHeaderInvalidReason | null {
  let crcAt = -1;
  let at = from;
  while (at < total) {
    if (total - at < 3) return 'TLV overruns header';
    const type = buf[at]!;
    const valueAt = at + 3;
    const end = valueAt + buf.readUInt16BE(at + 1);
    if (end > total) return 'TLV overruns header';
    at = end;
    if (type === TLV_NOOP) continue;
    const value = Buffer.from(buf.subarray(valueAt, end));
    if (type === TLV_CRC32C) {
      if (crcAt >= 0) return 'duplicate TLV';
      if (value.length !== 4) return 'bad CRC32C TLV';
      crcAt = valueAt;
    } else if (type === TLV_AUTHORITY) {
      if (header.authority !== undefined) return 'duplicate TLV';
      const text = decodeUtf8(value);
      if (text === null) return 'bad authority';
      header.authority = text;
    } else if (type === TLV_UNIQUE_ID) {
      if (header.uniqueId !== undefined) return 'duplicate TLV';
      if (value.length > UNIQUE_ID_MAX) return 'unique id too long';
      header.uniqueId = value;
    }
    header.tlvs.push({ type, value });
  }
  if (crcAt >= 0) {
    // Over the whole header with the checksum field read as zeros, without copying the header.
    let crc = crc32c(buf.subarray(0, crcAt));
    crc = crc32c(FOUR_ZEROS, crc);
    crc = crc32c(buf.subarray(crcAt + 4, total), crc);
    if (crc !== buf.readUInt32BE(crcAt)) return 'CRC32C mismatch';
  }
  return null;
}

/** Bytes of the address block for a family byte the spec defines, or -1 for any other value. */
function addressLengthOf(fam: number): number {
  const transport = fam & 0x0f;
  if (fam === 0x00) return 0;
  if (transport !== 1 && transport !== 2) return -1;
  switch (fam >> 4) {
    case 1:
      return 12;
    case 2:
      return 36;
    case 3:
      return 216;
    default:
      return -1;
  }
}

function familyName(fam: number): ProxyHeader['family'] {
  return fam === 0x11 ? 'tcp4' : fam === 0x21 ? 'tcp6' : fam === 0x31 ? 'unix' : 'unspec';
}

function readV1(buf: Buffer, maxLine: number): ReadResult {
  const n = buf.length;
  for (let i = 1; i < V1_PREFIX.length && i < n; i++) if (buf[i] !== V1_PREFIX[i]) return invalid('not a PROXY header');
  const limit = Math.min(n, maxLine);
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === CR) {
      if (i + 1 >= maxLine) return invalid('v1 line too long');
      if (i + 1 >= n) return INCOMPLETE;
      if (buf[i + 1] !== LF) return invalid('v1 bad line ending');
      const parsed = parseV1Line(buf.toString('latin1', V1_PREFIX.length, i));
      return typeof parsed === 'string' ? invalid(parsed) : { state: 'done', header: parsed, consumed: i + 2 };
    }
    if (c === LF) return invalid('v1 bad line ending');
    if (c < 0x20 || c > 0x7e) return invalid('v1 bad character');
  }
  return n >= maxLine ? invalid('v1 line too long') : INCOMPLETE;
}

/** The line between "PROXY " and CRLF, as a header or the reason it is not one. */
function parseV1Line(line: string): ProxyHeader | ProxyHeaderInvalidReason {
  // UNKNOWN: the sender could not tell; the rest of the line is to be ignored (spec 2.1).
  if (line === 'UNKNOWN' || line.startsWith('UNKNOWN ')) {
    return { version: 1, command: 'local', family: 'unspec', tlvs: [] };
  }
  const parts = line.split(' ');
  const protocol = parts[0];
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return 'v1 bad protocol';
  if (parts.length !== 5) return 'v1 bad address';
  const [, src = '', dst = '', sport = '', dport = ''] = parts;
  const source = protocol === 'TCP4' ? v1IPv4(src) : v1IPv6(src);
  const destination = protocol === 'TCP4' ? v1IPv4(dst) : v1IPv6(dst);
  if (source === null || destination === null) return 'v1 bad address';
  const sourcePort = v1Port(sport);
  const destinationPort = v1Port(dport);
  if (sourcePort < 0 || destinationPort < 0) return 'v1 bad port';
  return {
    version: 1,
    command: 'proxy',
    family: protocol === 'TCP4' ? 'tcp4' : 'tcp6',
    source: { address: source, port: sourcePort },
    destination: { address: destination, port: destinationPort },
    tlvs: [],
  };
}

function v1IPv4(text: string): string | null {
  return net.isIPv4(text) ? text : null; // Node's check already refuses leading zeros
}

function v1IPv6(text: string): string | null {
  if (text.includes('%') || !net.isIPv6(text)) return null; // a zone means nothing to the receiver
  const canonical = new net.SocketAddress({ address: text, family: 'ipv6' }).address;
  return canonical.startsWith('::ffff:') && net.isIPv4(canonical.slice(7)) ? canonical.slice(7) : canonical;
}

/** Decimal 0-65535, digits only, no sign and no leading zeros; -1 otherwise. */
function v1Port(text: string): number {
  if (!PORT_TEXT.test(text)) return -1;
  const port = Number(text);
  return port <= 0xffff ? port : -1;
}

function formatIPv4(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/**
 * 16 bytes as Node prints a socket address (libuv's inet_ntop: RFC 5952 compression, plus the
 * deprecated `::a.b.c.d` for IPv4-compatible addresses), with IPv4-mapped addresses as IPv4.
 */
export function formatIPv6(buf: Uint8Array, at: number): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((buf[at + 2 * i]! << 8) | buf[at + 2 * i + 1]!);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1; // a single zero word is written as 0, not ::
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && words[5] === 0xffff))) {
    const v4 = formatIPv4(buf as Buffer, at + 12);
    return bestLength === 5 ? v4 : `::${v4}`;
  }
  let text = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += i === 0 ? '::' : ':';
      i += bestLength - 1;
      continue;
    }
    text += words[i]!.toString(16);
    if (i < 7) text += ':';
  }
  return text;
}

/** A sockaddr_un path: up to the first NUL of its 108 bytes. */
function unixPath(buf: Buffer, at: number): string {
  const nul = buf.subarray(at, at + 108).indexOf(0);
  return buf.toString('utf8', at, nul === -1 ? at + 108 : at + nul);
}

function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

function invalid(reason: ProxyHeaderInvalidReason): ReadResult {
  let result = invalidResults.get(reason);
  if (result === undefined) {
    result = Object.freeze({ state: 'invalid', reason });
    invalidResults.set(reason, result);
  }
  return result;
}
