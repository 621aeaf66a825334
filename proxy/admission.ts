// Decides what happens to an accepted socket before it is proxied: read a PROXY header and/or a
// ClientHello when the listener needs them, pick the SNI endpoint, then apply the endpoint's deny
// and allow lists and connection limits to the real client address. Refusal = close at once,
// counted (edge-metrics.ts) and logged (connection-log.ts).

import { Connection, type ConnectionOptions, type ConnectionOrigin } from './connection.js';
import type { RefusalReason } from './edge-metrics.js';
import type { Listener } from './listener.js';
import { Preamble, type PreambleOptions, type PreambleSink } from './preamble.js';
import type { ListenerRoute, Route } from './route-table.js';
import type { TcpHandle } from './tcp-io/tcp-io.js';

export type AdmissionOptions = ConnectionOptions & PreambleOptions;

export class Admission implements PreambleSink {
  constructor(private readonly options: AdmissionOptions) {}

  accept(socket: TcpHandle, listener: Listener, route: ListenerRoute | undefined): void {
    listener.stats.total++;
    if (route === undefined) {
      socket.close();
      return;
    }
    const source = socket.remoteAddress();
    const destination = listener.destinationOf(socket);
    if (source === null || destination === null) {
      // The client reset before we got to it: no address to check lists or limits against.
      socket.close();
      return;
    }
    const startedAt = Date.now();
    if (route.single !== null && route.proxyIn === null) {
      this.admit(socket, route.single, { source, destination, initial: null, serverName: null, listener: listener.key, startedAt });
      return;
    }
    if (route.proxyIn !== null && !route.proxyIn.has(source.address)) {
      // A PROXY port never guesses: a peer that is not a trusted proxy is refused outright.
      listener.stats.refused('untrusted-proxy');
      this.refuse(socket, { source, destination, initial: null, serverName: null, listener: listener.key, startedAt }, null, 'untrusted-proxy', undefined);
      return;
    }
    Preamble.start(socket, route, source, destination, listener, startedAt, this, this.options);
  }

  preambleDone(p: Preamble, rest: Buffer | null, serverName: string | null): void {
    const origin: ConnectionOrigin = {
      source: p.source,
      destination: p.destination,
      initial: rest,
      serverName,
      listener: p.listener.key,
      startedAt: p.startedAt,
    };
    const route = p.route.sni !== null ? p.route.sni.route(serverName) : p.route.single;
    if (route === undefined || route === null) {
      p.listener.stats.refused('sni-no-match');
      this.refuse(p.socket, origin, null, 'sni-no-match', serverName ?? 'no server name');
      return;
    }
    this.admit(p.socket, route, origin);
  }

  preambleRefused(p: Preamble, reason: RefusalReason, detail: string): void {
    p.listener.stats.refused(reason);
    const origin = { source: p.source, destination: p.destination, initial: null, serverName: null, listener: p.listener.key, startedAt: p.startedAt };
    this.refuse(p.socket, origin, null, reason, detail);
  }

  private admit(socket: TcpHandle, route: Route, origin: ConnectionOrigin): void {
    const endpoint = route.endpoint;
    const address = origin.source.address;
    let reason: RefusalReason | null = null;
    let detail: string | undefined;
    if ((route.deny !== null && route.deny.has(address)) || (route.allow !== null && !route.allow.has(address))) {
      reason = 'allow-list';
    } else if (endpoint.maxConnections !== undefined && route.stats.active >= endpoint.maxConnections) {
      reason = 'limit';
      detail = 'maxConnections';
    } else if (
      endpoint.maxConnectionsPerClient !== undefined &&
      (route.stats.perClient.get(address) ?? 0) >= endpoint.maxConnectionsPerClient
    ) {
      reason = 'limit';
      detail = 'maxConnectionsPerClient';
    }
    if (reason === null) {
      const backend = route.balancer.pick(undefined, this.options.sweeper.now);
      if (backend !== undefined) {
        Connection.start(socket, route, backend, origin, this.options);
        return;
      }
      reason = 'no-backend';
    }
    route.stats.refused(reason);
    this.refuse(socket, origin, endpoint.id, reason, detail);
  }

  private refuse(socket: TcpHandle, origin: ConnectionOrigin, endpoint: string | null, reason: RefusalReason, detail: string | undefined): void {
    socket.close();
    if (!this.options.connectionLog.wants(`refused-${reason}`)) return;
    this.options.connectionLog.closed({
      client: origin.source,
      listener: origin.listener,
      endpoint,
      backend: null,
      bytesIn: 0,
      bytesOut: 0,
      startedAt: origin.startedAt,
      reason: `refused-${reason}`,
      detail,
      serverName: origin.serverName,
    });
  }
}
