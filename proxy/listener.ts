// One listening socket (address:port) of an endpoint. Accepted sockets go to a ConnectionSink; until
// the edge has swapped in the table that routes this listener, they wait parked instead of dropped.

import net, { type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ListenerStats } from './edge-metrics.js';
import { localAddressOf, type PeerAddress } from './peer-address.js';
import type { ListenerSpec } from './route-table.js';

/** Where accepted connections go. */
export interface ConnectionSink {
  accept(socket: Socket, listener: Listener): void;
}

export class Listener {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Counters of this address:port; live as long as it stays bound. */
  readonly stats: ListenerStats;
  /** Resolves once the listening socket and every connection it accepted are closed. */
  readonly closed: Promise<void>;
  private readonly destination: PeerAddress | null;
  private parked: Socket[] | null = [];

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
    this.closed = new Promise((resolve) => server.once('close', () => resolve()));
  }

  /** Binds `spec`; rejects with a message naming the address and the system error (EADDRINUSE...). */
  static open(spec: ListenerSpec, sink: ConnectionSink, log: Logger): Promise<Listener> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    const listener = new Listener(spec, server, sink);
    server.on('connection', (socket: Socket) => listener.onConnection(socket));
    return new Promise((resolve, reject) => {
      const onListenError = (err: NodeJS.ErrnoException): void => {
        server.close();
        reject(new Error(`cannot listen on ${spec.key} for endpoint "${spec.endpointId}": ${err.message}`, { cause: err }));
      };
      server.once('error', onListenError);
      server.listen({ host: spec.address, port: spec.port, ipv6Only: spec.address.includes(':') }, () => {
        server.off('error', onListenError);
        // Accept errors (EMFILE...) must not crash the process; the listener keeps going.
        server.on('error', (err) => log.error({ err, listener: spec.key }, 'listener error'));
        resolve(listener);
      });
    });
  }

  /** The table routing this listener is live: hand over anything accepted before that. */
  activate(): void {
    const parked = this.parked;
    this.parked = null;
    for (const socket of parked ?? []) {
      if (!socket.destroyed) this.sink.accept(socket, this);
    }
  }

  /** The address:port the client connected to, for the PROXY header. */
  destinationOf(socket: Socket): PeerAddress {
    return this.destination ?? localAddressOf(socket);
  }

  /** Stops accepting; established connections carry on. */
  close(): void {
    if (this.parked !== null) {
      for (const socket of this.parked) socket.destroy();
      this.parked = [];
    }
    if (this.server.listening) this.server.close();
  }

  private onConnection(socket: Socket): void {
    if (this.parked !== null) {
      // No handlers yet: swallow errors so a reset while parked cannot crash the process.
      socket.once('error', noop);
      this.parked.push(socket);
      return;
    }
    this.sink.accept(socket, this);
  }
}

function noop(): void {}
