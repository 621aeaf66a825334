// Decides what happens to an accepted socket before it is proxied: refuse it when file descriptors
// run low (fd-budget.ts), read a PROXY header and/or a ClientHello when the listener needs them,
// pick the SNI endpoint, then apply the endpoint's deny and allow lists and connection limits to
// the real client address. Refusal = close at once, counted (edge-metrics.ts) and logged
// (connection-log.ts; descriptor refusals only through the budget's once-a-second line).

import { Connection, type ConnectionOptions, type ConnectionOrigin } from './connection.js';
import type { RefusalReason } from './edge-metrics.js';
import type { Listener } from './listener.js';
import { Preamble, type PreambleOptions, type PreambleSink } from './preamble.js';
import type { ListenerRoute, Route } from './route-table.js';
import type { TcpHandle } from './tcp-io/tcp-io.js';
import { HttpRedirect } from './tls/http-redirect.js';
import { TlsTermination } from './tls/tls-termination.js';
import { encodeTlsTlvs } from './tls/tls-tlvs.js';

export type AdmissionOptions = ConnectionOptions & PreambleOptions;

export class Admission implements PreambleSink {
  constructor(private readonly options: AdmissionOptions) {}

  accept(socket: TcpHandle, listener: Listener, route: ListenerRoute | undefined): void {
    listener.stats.total++;
    if (route === undefined) {
      socket.close();
      return;
    }
    const budget = this.options.budget;
    if (budget.pressure() === 'full') {
      // What is left is for the backend connects of clients already admitted.
      listener.stats.refused('fd-limit');
      budget.noteRefused();
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
    } else if (this.overShare(route)) {
      route.stats.refused('fd-limit');
      this.options.budget.noteRefused();
      socket.close();
      return;
    }
    if (reason === null && endpoint.httpRedirect === true) {
      HttpRedirect.start(socket, this.options.sweeper, this.options.helloTimeoutMs);
      return;
    }
    if (reason === null && route.tls !== null && origin.tlsTlvs === undefined) {
      this.terminate(socket, route, origin);
      return;
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

  /** Runs the TLS handshake, then proxies the cleartext side like any other client. */
  private terminate(socket: TcpHandle, route: Route, origin: ConnectionOrigin): void {
    TlsTermination.start(socket, route.tls!, this.options.helloTimeoutMs, this.options.sweeper, {
      wantsFacts: route.endpoint.proxyProtocol === 'v2',
      secured: (handle, serverName, facts) => {
        const tlsOrigin: ConnectionOrigin = {
          ...origin,
          // What was read ahead was the hello, consumed by the handshake.
          initial: null,
          serverName,
          tlsTlvs: facts === null ? null : encodeTlsTlvs(facts),
        };
        const backend = route.balancer.pick(undefined, this.options.sweeper.now);
        if (backend !== undefined) {
          Connection.start(handle, route, backend, tlsOrigin, this.options);
          return;
        }
        route.stats.refused('no-backend');
        this.refuse(handle, tlsOrigin, route.endpoint.id, 'no-backend', undefined);
      },
      refused: (reason, detail) => {
        route.stats.refused(reason);
        // The handle is closed already (with the TLS socket).
        this.refuse(null, origin, route.endpoint.id, reason, detail);
      },
    }, origin.initial);
  }

  /** Descriptors are low: refuse the endpoint that holds more than its share, or any when none is left. */
  private overShare(route: Route): boolean {
    const budget = this.options.budget;
    const pressure = budget.pressure();
    return pressure === 'full' || (pressure === 'tight' && route.stats.active >= budget.fairShare);
  }

  private refuse(socket: TcpHandle | null, origin: ConnectionOrigin, endpoint: string | null, reason: RefusalReason, detail: string | undefined): void {
    socket?.close();
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
