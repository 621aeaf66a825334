// Reads the server name and ALPN list from the first bytes of a TLS connection (the ClientHello,
// RFC 8446 §4.1.2, RFC 6066 §3, RFC 7301) without terminating TLS. Pure: the caller accumulates
// bytes and calls again on 'incomplete'. Every length is checked against its container; nothing throws.

export type HelloResult =
  | { state: 'incomplete' }
  | {
      state: 'done';
      /** Lowercased host_name from server_name, or null when the client sent none. */
      serverName: string | null;
      /** ALPN protocol names in the client's order (latin1, byte for byte), [] when absent. */
      alpn: string[];
      /** Bytes of whole TLS records read up to the one completing the ClientHello; informational. */
      consumedRecords: number;
    }
  | { state: 'invalid'; reason: HelloInvalidReason };

export type HelloInvalidReason =
  | 'not TLS'
  | 'not a ClientHello'
  | 'too large'
  | 'bad record'
  | 'bad hello'
  | 'bad extension'
  | 'bad server name';

export interface ReadClientHelloOptions {
  /** Cap on the bytes of records holding the ClientHello; a declared length beyond it fails at once. */
  maxBytes?: number;
}

export const DEFAULT_MAX_HELLO_BYTES = 16384;

const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const MAX_RECORD_PAYLOAD = 16384; // 2^14, RFC 8446 §5.1
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const NAME_TYPE_HOST = 0;
const MAX_SERVER_NAME = 255;

const INCOMPLETE: HelloResult = Object.freeze({ state: 'incomplete' });

function invalid(reason: HelloInvalidReason): HelloResult {
  return { state: 'invalid', reason };
}

/**
 * Walks the records at the start of `buf` (a connection's first bytes) until the ClientHello
 * handshake message is whole, then parses it. Bytes after the record that completes it are ignored.
 *
 * A server_name whose host_name, once lowercased, holds a byte outside [a-z0-9.-], an empty label
 * (leading, trailing or doubled dot) or more than 255 bytes makes the hello 'invalid' ('bad server
 * name') rather than yielding null: null would quietly route a name the client did ask for to the
 * fallback, and the backend's TLS stack might read the odd bytes differently than we did.
 */
export function readClientHello(buf: Buffer, options: ReadClientHelloOptions = {}): HelloResult {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_HELLO_BYTES;
  // Record payloads gathered so far; the usual single-record hello is never copied.
  const fragments: Buffer[] = [];
  let gathered = 0;
  let needed = -1; // handshake header + body length, once the header is in
  let offset = 0;

  while (true) {
    // Check what is already present of the record header, so garbage fails at its first byte.
    const first = offset === 0;
    const available = buf.length - offset;
    if (available >= 1 && buf[offset] !== CONTENT_HANDSHAKE) return invalid(first ? 'not TLS' : 'bad record');
    if (available >= 2 && buf[offset + 1] !== 3) return invalid(first ? 'not TLS' : 'bad record');
    if (available >= 3) {
      const minor = buf[offset + 2]!;
      if (minor < 1 || minor > 3) return invalid(first ? 'not TLS' : 'bad record');
    }
    if (available < RECORD_HEADER) return INCOMPLETE;

    const length = buf.readUInt16BE(offset + 3);
    if (length === 0 || length > MAX_RECORD_PAYLOAD) return invalid('bad record');
    const recordEnd = offset + RECORD_HEADER + length;
    if (recordEnd > maxBytes) return invalid('too large');

    const payload = buf.subarray(offset + RECORD_HEADER, Math.min(recordEnd, buf.length));
    fragments.push(payload);
    gathered += payload.length;

    if (needed < 0) {
      if (gathered >= 1 && byteAt(fragments, 0) !== HANDSHAKE_CLIENT_HELLO) return invalid('not a ClientHello');
      if (gathered >= HANDSHAKE_HEADER) {
        const bodyLength = (byteAt(fragments, 1) << 16) | (byteAt(fragments, 2) << 8) | byteAt(fragments, 3);
        needed = HANDSHAKE_HEADER + bodyLength;
        // Even packed into the fewest records, the message would not fit under the cap.
        if (needed + RECORD_HEADER * Math.ceil(needed / MAX_RECORD_PAYLOAD) > maxBytes) return invalid('too large');
      }
    }

    if (recordEnd > buf.length) return INCOMPLETE;
    if (needed >= 0 && gathered >= needed) {
      const message = fragments.length === 1 ? payload : Buffer.concat(fragments, gathered);
      return parseClientHello(message.subarray(HANDSHAKE_HEADER, needed), recordEnd);
    }
    offset = recordEnd;
  }
}

/** Byte `index` of the handshake stream spread over `fragments`; the caller knows it exists. */
function byteAt(fragments: Buffer[], index: number): number {
  for (const fragment of fragments) {
    if (index < fragment.length) return fragment[index]!;
    index -= fragment.length;
  }
  return -1;
}

function parseClientHello(body: Buffer, consumedRecords: number): HelloResult {
  // legacy_version (2), random (32)
  let at = 34;
  if (body.length < at || body[0] !== 3) return invalid('bad hello');

  const sessionIdLength = body[at];
  if (sessionIdLength === undefined || sessionIdLength > 32) return invalid('bad hello');
  at += 1 + sessionIdLength;

  if (at + 2 > body.length) return invalid('bad hello');
  const suitesLength = body.readUInt16BE(at);
  if (suitesLength < 2 || suitesLength % 2 !== 0) return invalid('bad hello');
  at += 2 + suitesLength;

  const compressionLength = body[at];
  if (compressionLength === undefined || compressionLength < 1) return invalid('bad hello');
  at += 1 + compressionLength;
  if (at > body.length) return invalid('bad hello');

  // Pre-TLS 1.2 hellos may end here: no extensions at all.
  if (at === body.length) return { state: 'done', serverName: null, alpn: [], consumedRecords };
  if (at + 2 > body.length) return invalid('bad extension');
  const extensionsEnd = at + 2 + body.readUInt16BE(at);
  if (extensionsEnd !== body.length) return invalid('bad extension');
  at += 2;

  let serverName: string | null = null;
  let alpn: string[] = [];
  let sawServerName = false;
  let sawAlpn = false;
  while (at < extensionsEnd) {
    if (at + 4 > extensionsEnd) return invalid('bad extension');
    const type = body.readUInt16BE(at);
    const dataEnd = at + 4 + body.readUInt16BE(at + 2);
    if (dataEnd > extensionsEnd) return invalid('bad extension');
    const data = body.subarray(at + 4, dataEnd);
    // A repeated extension is forbidden (RFC 8446 §4.2) and would let us and the backend disagree.
    if (type === EXT_SERVER_NAME) {
      if (sawServerName) return invalid('bad extension');
      sawServerName = true;
      const name = readServerName(data);
      if (typeof name === 'object' && name !== null) return name;
      serverName = name;
    } else if (type === EXT_ALPN) {
      if (sawAlpn) return invalid('bad extension');
      sawAlpn = true;
      const protocols = readAlpn(data);
      if (protocols === null) return invalid('bad extension');
      alpn = protocols;
    }
    at = dataEnd;
  }
  return { state: 'done', serverName, alpn, consumedRecords };
}

/** The host_name of a server_name extension, null if it holds none, or the invalid result. */
function readServerName(data: Buffer): string | null | HelloResult {
  // A server may send an empty server_name back, a client never does.
  if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2) return invalid('bad extension');
  let host: string | null = null;
  let at = 2;
  while (at < data.length) {
    if (at + 3 > data.length) return invalid('bad extension');
    const nameType = data[at]!;
    const end = at + 3 + data.readUInt16BE(at + 1);
    if (end > data.length || end === at + 3) return invalid('bad extension');
    if (nameType === NAME_TYPE_HOST) {
      if (host !== null) return invalid('bad extension'); // one name per type (RFC 6066 §3)
      host = normalizeHostName(data, at + 3, end);
      if (host === null) return invalid('bad server name');
    }
    at = end;
  }
  return host;
}

/** The lowercased name if every byte is in [a-z0-9.-] after lowercasing and no label is empty. */
function normalizeHostName(data: Buffer, start: number, end: number): string | null {
  if (end - start > MAX_SERVER_NAME) return null;
  let out = '';
  let labelLength = 0;
  for (let i = start; i < end; i++) {
    let c = data[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20; // A-Z
    if (c === 0x2e) {
      if (labelLength === 0) return null;
      labelLength = 0;
    } else if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d) {
      labelLength++;
    } else {
      return null;
    }
    out += String.fromCharCode(c);
  }
  return labelLength === 0 ? null : out;
}

/** ProtocolNameList<2..2^16-1> of ProtocolName<1..2^8-1>, or null when malformed. */
function readAlpn(data: Buffer): string[] | null {
  if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2 || data.length === 2) return null;
  const protocols: string[] = [];
  let at = 2;
  while (at < data.length) {
    const length = data[at]!;
    const end = at + 1 + length;
    if (length === 0 || end > data.length) return null;
    protocols.push(data.toString('latin1', at + 1, end));
    at = end;
  }
  return protocols;
}
