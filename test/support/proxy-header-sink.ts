// A backend that expects a PROXY protocol header (v1 or v2) as the very first bytes of every
// connection, decodes it with a tiny strict parser, records it, then echoes the rest.

import net, { type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import ipaddr from 'ipaddr.js';

export interface DecodedProxyHeader {
  version: 1 | 2;
  family: 'TCP4' | 'TCP6';
  source: { address: string; port: number };
  destination: { address: string; port: number };
  /** The header's exact bytes. */
  raw: Buffer;
}

export interface ProxyHeaderSink {
  address: string;
  port: number;
  headers: DecodedProxyHeader[];
  /** Decode failures (anything before or instead of a valid header). */
  errors: Error[];
  /** Resolves with the header of connection number `index` (0-based) once it has arrived. */
  header(index: number): Promise<DecodedProxyHeader>;
}

export async function startProxyHeaderSink(t: TestContext, options: { host?: string } = {}): Promise<ProxyHeaderSink> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const waiters = new Map<number, (h: DecodedProxyHeader) => void>();
  const sink: ProxyHeaderSink = {
    address: host,
    port: 0,
    headers: [],
    errors: [],
    header(index) {
      const known = sink.headers[index];
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve) => waiters.set(index, resolve));
    },
  };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      let decoded: DecodedProxyHeader | undefined;
      try {
        decoded = decodeProxyHeader(pending);
      } catch (err) {
        sink.errors.push(err as Error);
        socket.destroy();
        return;
      }
      if (decoded === undefined) return;
      socket.off('data', onData);
      const index = sink.headers.push(decoded) - 1;
      waiters.get(index)?.(decoded);
      const rest = pending.subarray(decoded.raw.length);
      if (rest.length > 0) socket.write(rest);
      socket.pipe(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only: host.includes(':') }, resolve);
  });
  sink.port = (server.address() as net.AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return sink;
}

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** The header at the start of `buf`, undefined while incomplete; throws on anything invalid. */
export function decodeProxyHeader(buf: Buffer): DecodedProxyHeader | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x0d) return decodeV2(buf);
  if (buf[0] === 0x50) return decodeV1(buf);
  throw new Error(`not a PROXY header: starts with 0x${buf[0]!.toString(16)}`);
}

function decodeV2(buf: Buffer): DecodedProxyHeader | undefined {
  if (buf.length < 16) return undefined;
  if (!buf.subarray(0, 12).equals(V2_SIGNATURE)) throw new Error('bad v2 signature');
  if (buf[12] !== 0x21) throw new Error(`v2 ver_cmd 0x${buf[12]!.toString(16)} is not PROXY`);
  const fam = buf[13];
  const len = buf.readUInt16BE(14);
  const addressBytes = fam === 0x11 ? 12 : fam === 0x21 ? 36 : -1;
  if (addressBytes < 0) throw new Error(`v2 family 0x${fam!.toString(16)} is not TCP4 or TCP6`);
  if (len !== addressBytes) throw new Error(`v2 len ${len}, expected ${addressBytes} (no TLVs sent)`);
  if (buf.length < 16 + len) return undefined;
  const a = buf.subarray(16, 16 + len);
  const size = fam === 0x11 ? 4 : 16;
  const text = (bytes: Buffer): string => {
    const ip = ipaddr.fromByteArray([...bytes]);
    return ip.kind() === 'ipv6' ? (ip as ipaddr.IPv6).toRFC5952String() : ip.toString();
  };
  return {
    version: 2,
    family: fam === 0x11 ? 'TCP4' : 'TCP6',
    source: { address: text(a.subarray(0, size)), port: a.readUInt16BE(2 * size) },
    destination: { address: text(a.subarray(size, 2 * size)), port: a.readUInt16BE(2 * size + 2) },
    raw: Buffer.from(buf.subarray(0, 16 + len)),
  };
}

function decodeV1(buf: Buffer): DecodedProxyHeader | undefined {
  const end = buf.indexOf('\r\n');
  if (end === -1) {
    if (buf.length >= 107) throw new Error('v1 line longer than 107 bytes');
    return undefined;
  }
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  if (parts.length !== 6 || parts[0] !== 'PROXY') throw new Error(`bad v1 line: ${JSON.stringify(parts.join(' '))}`);
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : family === 'TCP6' ? 6 : 0;
  if (want === 0 || net.isIP(src) !== want || net.isIP(dst) !== want) throw new Error(`bad v1 addresses: ${parts.join(' ')}`);
  const port = (p: string): number => {
    if (!/^(0|[1-9][0-9]{0,4})$/.test(p) || Number(p) > 65535) throw new Error(`bad v1 port ${p}`);
    return Number(p);
  };
  return {
    version: 1,
    family: family as 'TCP4' | 'TCP6',
    source: { address: src, port: port(sport) },
    destination: { address: dst, port: port(dport) },
    raw: Buffer.from(buf.subarray(0, end + 2)),
  };
}
