// One listening socket (address:port) of an endpoint. Accepted connections arrive as TcpHandles
// (tcp-io/) and go to a ConnectionSink; until the edge has swapped in the table that routes this
// listener, they wait parked (not read) instead of dropped.

import net from 'node:net';
import type { Logger } from 'pino';
import { ListenerStats } from './edge-metrics.js';
import type { PeerAddress } from './peer-address.js';
import type { ListenerSpec } from './route-table.js';
import type { HandleHome, TcpHandle, TcpIo } from './tcp-io/tcp-io.js';

/** Where accepted connections go. */
export interface ConnectionSink {
  accept(handle: TcpHandle, listener: Listener): void;
}

export class Listener implements HandleHome {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Counters of this address:port; live as long as it stays bound. */
  readonly stats: ListenerStats;
  /** Resolves once the listening socket and every connection it accepted are closed. */
  readonly closed: Promise<void>;
  private readonly destination: PeerAddress | null;
  private parked: TcpHandle[] | null = [];
  /** Accepted handles not yet closed. */
  private open = 0;
  private serverClosed = false;
  private resolveClosed: () => void = noop;

  private constructor(
    spec: ListenerSpec,
    private readonly server: net.Server,
    private readonly sink: ConnectionSink,
  ) {
    this.key = spec.key;
    this.address = spec.address;
    this.port = spec.port;
    this.stats = new ListenerStats(spec.key);
    // A wildcard bind is reached through many addresses: read those per socket.
    const wildcard = spec.address === '0.0.0.0' || spec.address === '::';
    this.destination = wildcard ? null : { address: spec.address, port: spec.port };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    server.once('close', () => {
      this.serverClosed = true;
      if (this.open === 0) this.resolveClosed();
    });
  }

  /** Binds `spec`; rejects with a message naming the address and the system error (EADDRINUSE...). */
  static open(spec: ListenerSpec, sink: ConnectionSink, io: TcpIo, log: Logger): Promise<Listener> {
    // pauseOnConnect: nothing is read before the connection has an owner (see TcpIo.accept).
    const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    const listener = new Listener(spec, server, sink);
    return new Promise((resolve, reject) => {
      const onListenError = (err: NodeJS.ErrnoException): void => {
        server.close();
        reject(new Error(`cannot listen on ${spec.key} for endpoint "${spec.endpointId}": ${err.message}`, { cause: err }));
      };
      server.once('error', onListenError);
      server.listen({ host: spec.address, port: spec.port, ipv6Only: spec.address.includes(':') }, () => {
        server.off('error', onListenError);
        // Errors must not crash the process; the listener keeps going. Accept errors (EMFILE...)
        // reach the io's onError below, so they are logged once.
        server.on('error', (err: NodeJS.ErrnoException) => {
          if (err.syscall !== 'accept') log.error({ err, listener: spec.key }, 'listener error');
        });
        io.accept(
          server,
          (handle) => listener.onConnection(handle),
          (code) => log.error({ code, listener: spec.key }, 'accept failed'),
        );
        resolve(listener);
      });
    });
  }

  /** The table routing this listener is live: hand over anything accepted before that. */
  activate(): void {
    const parked = this.parked;
    this.parked = null;
    for (const handle of parked ?? []) this.sink.accept(handle, this);
  }

  /** The address:port the client connected to, for the PROXY header; null once the client is gone. */
  destinationOf(handle: TcpHandle): PeerAddress | null {
    return this.destination ?? handle.localAddress();
  }

  handleClosed(): void {
    this.open--;
    if (this.open === 0 && this.serverClosed) this.resolveClosed();
  }

  /** Stops accepting; established connections carry on. */
  close(): void {
    if (this.parked !== null) {
      for (const handle of this.parked) handle.close();
      this.parked = [];
    }
    if (this.server.listening) this.server.close();
  }

  private onConnection(handle: TcpHandle): void {
    this.open++;
    handle.home = this;
    if (this.parked !== null) {
      // Not read until activated, so nothing is lost meanwhile.
      this.parked.push(handle);
      return;
    }
    this.sink.accept(handle, this);
  }
}

function noop(): void {}
