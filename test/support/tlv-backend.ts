// A strict backend for tls: terminate tests: every connection must start with a PROXY v2 header,
// read with Pier's own reader (proxy/proxy-header-reader.ts, which enforces the length and walks
// the TLVs); the header is recorded, and the bytes after it are echoed back.

import net from 'node:net';
import type { TestContext } from 'node:test';
import { readProxyHeader, type ProxyHeader } from '../../proxy/proxy-header-reader.js';

export interface TlvBackend {
  address: string;
  port: number;
  headers: ProxyHeader[];
  errors: string[];
}

export async function startTlvBackend(t: TestContext): Promise<TlvBackend> {
  const backend: TlvBackend = { address: '127.0.0.1', port: 0, headers: [], errors: [] };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    let done = false;
    socket.on('data', (chunk: Buffer) => {
      if (done) return void socket.write(chunk);
      pending = Buffer.concat([pending, chunk]);
      const result = readProxyHeader(pending);
      if (result.state === 'incomplete') return;
      if (result.state === 'invalid') {
        backend.errors.push(result.reason);
        return void socket.destroy();
      }
      done = true;
      backend.headers.push(result.header);
      const rest = pending.subarray(result.consumed);
      if (rest.length > 0) socket.write(rest);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as net.AddressInfo).port;
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return backend;
}

/** The SSL TLV (0x20) of a header, decoded: flags, verify and its sub-TLVs by type. */
export function sslTlv(header: ProxyHeader): { client: number; verify: number; subs: Map<number, string> } | undefined {
  const tlv = header.tlvs.find((x) => x.type === 0x20);
  if (tlv === undefined) return undefined;
  const v = tlv.value;
  const subs = new Map<number, string>();
  for (let at = 5; at + 3 <= v.length; ) {
    const len = v.readUInt16BE(at + 1);
    subs.set(v[at]!, v.subarray(at + 3, at + 3 + len).toString('utf8'));
    at += 3 + len;
  }
  return { client: v[0]!, verify: v.readUInt32BE(1), subs };
}
