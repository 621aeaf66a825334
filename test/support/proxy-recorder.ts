// A backend that reads a PROXY header (v1 or v2, TLVs included) with the edge's strict reader,
// records it, then echoes the rest. Unlike proxy-header-sink it accepts TLVs and LOCAL headers.

import net, { type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { readProxyHeader, type ProxyHeader } from '../../proxy/proxy-header-reader.js';

export interface RecordedHeader extends ProxyHeader {
  raw: Buffer;
}

export interface ProxyRecorder {
  address: string;
  port: number;
  headers: RecordedHeader[];
  /** Invalid headers seen (the reader's reason). */
  errors: string[];
  header(index: number): Promise<RecordedHeader>;
}

export async function startProxyRecorder(t: TestContext, options: { host?: string } = {}): Promise<ProxyRecorder> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const waiters = new Map<number, (h: RecordedHeader) => void>();
  const recorder: ProxyRecorder = {
    address: host,
    port: 0,
    headers: [],
    errors: [],
    header(index) {
      const known = recorder.headers[index];
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
      const result = readProxyHeader(pending);
      if (result.state === 'incomplete') return;
      socket.off('data', onData);
      if (result.state === 'invalid') {
        recorder.errors.push(result.reason);
        socket.destroy();
        return;
      }
      const recorded = { ...result.header, raw: Buffer.from(pending.subarray(0, result.consumed)) };
      const index = recorder.headers.push(recorded) - 1;
      waiters.get(index)?.(recorded);
      const rest = pending.subarray(result.consumed);
      if (rest.length > 0) socket.write(rest);
      socket.pipe(socket);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only: host.includes(':') }, resolve);
  });
  recorder.port = (server.address() as net.AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return recorder;
}
