// The PROXY v2 TLVs a terminating edge adds for the backend (haproxy doc/proxy-protocol.txt
// 2.2.1 and 2.2.5): ALPN (the protocol agreed) and SSL: a flags byte (0x01 the client spoke TLS,
// 0x02 it presented a certificate on this connection, 0x04 in the resumed session), a 32-bit
// verify result (0: verified, or no certificate asked for), then sub-TLVs VERSION ("TLSv1.3"),
// CIPHER (OpenSSL's name) and CN (the client certificate's subject common name).

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;
export const PP2_CLIENT_CERT_SESS = 0x04;

export interface TlsFacts {
  alpn: string | null;
  version: string;
  cipher: string;
  /** A client certificate was presented on this connection / is part of the resumed session. */
  certConnection: boolean;
  certSession: boolean;
  /** 0 when verified (or none was asked for); else non-zero. */
  verify: number;
  /** The client certificate's subject CN, when there is one. */
  commonName: string | null;
}

function tlv(type: number, value: Buffer): Buffer {
  const out = Buffer.allocUnsafe(3 + value.length);
  out[0] = type;
  out.writeUInt16BE(value.length, 1);
  value.copy(out, 3);
  return out;
}

/** The encoded ALPN (when one was agreed) and SSL TLVs, to go into the header as they are. */
export function encodeTlsTlvs(facts: TlsFacts): Buffer {
  const subs = [tlv(PP2_SUBTYPE_SSL_VERSION, Buffer.from(facts.version, 'latin1'))];
  if (facts.commonName !== null) subs.push(tlv(PP2_SUBTYPE_SSL_CN, Buffer.from(facts.commonName, 'utf8').subarray(0, 1024)));
  subs.push(tlv(PP2_SUBTYPE_SSL_CIPHER, Buffer.from(facts.cipher, 'latin1')));
  const head = Buffer.allocUnsafe(5);
  head[0] = PP2_CLIENT_SSL | (facts.certConnection ? PP2_CLIENT_CERT_CONN : 0) | (facts.certSession ? PP2_CLIENT_CERT_SESS : 0);
  head.writeUInt32BE(facts.verify >>> 0, 1);
  const ssl = tlv(PP2_TYPE_SSL, Buffer.concat([head, ...subs]));
  return facts.alpn === null ? ssl : Buffer.concat([tlv(PP2_TYPE_ALPN, Buffer.from(facts.alpn, 'latin1')), ssl]);
}
