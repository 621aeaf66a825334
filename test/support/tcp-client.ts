// Small TCP clients for proxy tests: a one-shot exchange (send, FIN, read to the end) and a held
// connection that round-trips bytes through an echo on demand. Loopback only.

import { readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import type { TestContext } from 'node:test';

/** Connects, sends `payload`, ends writing, and resolves with everything received until the FIN. */
export function exchange(host: string, port: number, payload: Buffer | string, timeoutMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host, port, allowHalfOpen: true }, () => socket.end(payload));
    // A peer that accepts and then never answers nor closes fails the exchange, not the whole run.
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`connection to ${host}:${port}: nothing for ${timeoutMs} ms after ${chunks.reduce((n, c) => n + c.length, 0)} bytes`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      resolve(Buffer.concat(chunks));
      socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection to ${host}:${port} closed without a FIN`)));
  });
}

export interface HeldClient {
  socket: Socket;
  /** Writes `data` and resolves with the next `data.length` bytes received. */
  roundTrip(data: Buffer | string): Promise<Buffer>;
  /** Resolves when the peer ends or resets the connection. */
  closed: Promise<void>;
}

/** Opens a connection that stays open until the test ends. */
export async function connectClient(t: TestContext, host: string, port: number): Promise<HeldClient> {
  const socket = net.connect({ host, port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  t.after(() => socket.destroy());
  let buffered = Buffer.alloc(0);
  let waiting: { length: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  const settle = (): void => {
    if (waiting !== undefined && buffered.length >= waiting.length) {
      const { length, resolve } = waiting;
      waiting = undefined;
      resolve(buffered.subarray(0, length));
      buffered = buffered.subarray(length);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    settle();
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('error', () => undefined);
    const gone = (): void => {
      waiting?.reject(new Error('connection closed before the reply was complete'));
      resolve();
    };
    socket.on('end', gone);
    socket.on('close', gone);
  });
  return {
    socket,
    closed,
    roundTrip(data) {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      return new Promise((resolve, reject) => {
        waiting = { length: bytes.length, resolve, reject };
        socket.write(bytes);
        settle();
      });
    },
  };
}

/** The kernel's ephemeral range (where it picks ports for `listen(0)` and outgoing connections). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && high && low > 2048) return [low, high];
  } catch {
    // Not Linux: the IANA range.
  }
  return [49152, 65535];
}

/**
 * A port that was free on `host` a moment ago, picked at random below the kernel's ephemeral
 * range: a port the kernel handed out (`listen(0)`) is the next one it may hand to any other
 * test's listener or outgoing connection in the moment before the caller binds it, which once let
 * another test's echo server answer on an edge's port. Tried up to 50 times; then the kernel picks.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [low] = ephemeralRange();
  const bottom = Math.max(10_000, low - 12_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = bottom + Math.floor(Math.random() * (low - bottom));
    if (await bindable(host, port)) return port;
  }
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, ipv6Only: host.includes(':') }, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether `port` can be listened on at `host` now. */
function bindable(host: string, port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => server.close(() => resolve(true)));
  });
}

/** A port free on both 127.0.0.1 and ::1 (bounded retries). */
export async function freePortOnBoth(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort('127.0.0.1');
    const server = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ host: '::1', port, ipv6Only: true }, () => resolve(true));
    });
    if (ok) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error('no port free on both 127.0.0.1 and ::1 after 20 tries');
}
