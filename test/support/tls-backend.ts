// TLS servers for SNI passthrough tests, with the committed test certificate (test/support/tls/):
// each answers every connection with its own name, then echoes. The edge never terminates TLS,
// so the name a client reads proves which backend the edge picked.

import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import tls from 'node:tls';

const TLS_DIR = new URL('../../../test/support/tls/', import.meta.url);
export const TEST_CERT = readFileSync(new URL('cert.pem', TLS_DIR));
export const TEST_KEY = readFileSync(new URL('key.pem', TLS_DIR));

export interface TlsBackend {
  name: string;
  address: string;
  port: number;
  /** Server names the handshakes asked for, in order. */
  serverNames: (string | false | null)[];
}

export async function startTlsBackend(t: TestContext, name: string): Promise<TlsBackend> {
  const backend: TlsBackend = { name, address: '127.0.0.1', port: 0, serverNames: [] };
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: TEST_CERT, key: TEST_KEY, ALPNProtocols: ['pier-test', 'http/1.1'] }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    backend.serverNames.push(socket.servername);
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  backend.port = (server.address() as AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return backend;
}

/** Connects with TLS through `port` asking for `servername`; resolves with the first line the server sends. */
export function tlsGreeting(port: number, servername: string, extra: tls.ConnectionOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: TEST_CERT, ...extra });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        resolve(text.slice(0, nl));
        socket.destroy();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed before a greeting (${servername})`)));
  });
}
