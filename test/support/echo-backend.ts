// A TCP echo server on loopback for proxy tests: echoes every byte, and answers the client's FIN
// with its own once everything is echoed (half-close aware). Counts the connections it accepted.

import net, { type Socket } from 'node:net';
import type { TestContext } from 'node:test';

export interface EchoBackend {
  address: string;
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections currently open. */
  readonly open: number;
  close(): Promise<void>;
}

export async function startEchoBackend(t: TestContext, options: { host?: string } = {}): Promise<EchoBackend> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    backend.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only: host.includes(':') }, resolve);
  });
  const backend: EchoBackend = {
    address: host,
    port: (server.address() as net.AddressInfo).port,
    accepted: 0,
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  t.after(() => backend.close());
  return backend;
}
