// Counters of the data plane, kept as plain integers on long-lived objects (endpoint and listener
// stats, Backend) and read out by Edge.metrics() as a JSON-able snapshot: arrays of flat records
// that another process can sum across workers by their key fields (docs/edge.md lists them).

import type { Backend } from './backend.js';
import type { FdMetrics } from './fd-budget.js';

/** Why a connection was closed before (or instead of) reaching a backend. */
export type RefusalReason =
  | 'allow-list'
  | 'limit'
  | 'no-backend'
  | 'untrusted-proxy'
  | 'proxy-header'
  | 'tls-hello'
  | 'sni-no-match'
  /** File descriptors ran low (fd-budget.ts). */
  | 'fd-limit'
  /** tls: terminate: the handshake failed or timed out / the client had no valid certificate (mTLS). */
  | 'tls-handshake'
  | 'client-cert';

/** Per endpoint. Bytes are counted from the client's point of view: in = from the client. */
export interface EndpointMetrics {
  endpoint: string;
  /** The snapshot's label for the endpoint (its id when it has none). */
  name: string;
  app: string;
  connectionsActive: number;
  connectionsTotal: number;
  bytesIn: number;
  bytesOut: number;
  connectErrors: number;
  retries: number;
  idleTimeouts: number;
  refusedAllowList: number;
  refusedLimit: number;
  refusedNoBackend: number;
  refusedFdLimit: number;
  refusedTlsHandshake: number;
  refusedClientCert: number;
}

export interface BackendMetrics {
  endpoint: string;
  backend: string;
  address: string;
  port: number;
  connectionsActive: number;
  connectionsTotal: number;
  bytesIn: number;
  bytesOut: number;
  connectErrors: number;
  ejections: number;
  /** 1 while ejected, else 0 (a gauge). */
  ejected: number;
  /** 1 while draining, else 0 (a gauge). */
  draining: number;
}

/** Per listening address:port: what happens before an endpoint is known (PROXY-in, SNI). */
export interface ListenerMetrics {
  listener: string;
  connectionsTotal: number;
  refusedUntrustedProxy: number;
  refusedProxyHeader: number;
  refusedTlsHello: number;
  refusedSniNoMatch: number;
  refusedFdLimit: number;
}

export interface EdgeMetrics {
  /** The snapshot version served, null before the first apply. */
  version: number | null;
  endpoints: EndpointMetrics[];
  backends: BackendMetrics[];
  listeners: ListenerMetrics[];
  /** This process's file descriptors: limit, open, reserve, refusals and errors. */
  descriptors: FdMetrics;
}

/** Live counters of one endpoint; kept across snapshots while the endpoint id exists. */
export class EndpointStats {
  active = 0;
  total = 0;
  bytesIn = 0;
  bytesOut = 0;
  connectErrors = 0;
  retries = 0;
  idleTimeouts = 0;
  refusedAllowList = 0;
  refusedLimit = 0;
  refusedNoBackend = 0;
  refusedFdLimit = 0;
  refusedTlsHandshake = 0;
  refusedClientCert = 0;
  /** Open connections per client address; only kept for endpoints with maxConnectionsPerClient. */
  readonly perClient = new Map<string, number>();

  constructor(
    readonly endpoint: string,
    public app: string,
    public name: string,
  ) {}

  refused(reason: RefusalReason): void {
    if (reason === 'allow-list') this.refusedAllowList++;
    else if (reason === 'limit') this.refusedLimit++;
    else if (reason === 'no-backend') this.refusedNoBackend++;
    else if (reason === 'fd-limit') this.refusedFdLimit++;
    else if (reason === 'tls-handshake') this.refusedTlsHandshake++;
    else if (reason === 'client-cert') this.refusedClientCert++;
  }

  toMetrics(): EndpointMetrics {
    return {
      endpoint: this.endpoint,
      name: this.name,
      app: this.app,
      connectionsActive: this.active,
      connectionsTotal: this.total,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      connectErrors: this.connectErrors,
      retries: this.retries,
      idleTimeouts: this.idleTimeouts,
      refusedAllowList: this.refusedAllowList,
      refusedLimit: this.refusedLimit,
      refusedNoBackend: this.refusedNoBackend,
      refusedTlsHandshake: this.refusedTlsHandshake,
      refusedClientCert: this.refusedClientCert,
      refusedFdLimit: this.refusedFdLimit,
    };
  }
}

export class ListenerStats {
  total = 0;
  refusedUntrustedProxy = 0;
  refusedProxyHeader = 0;
  refusedTlsHello = 0;
  refusedSniNoMatch = 0;
  refusedFdLimit = 0;

  constructor(readonly listener: string) {}

  refused(reason: RefusalReason): void {
    if (reason === 'untrusted-proxy') this.refusedUntrustedProxy++;
    else if (reason === 'proxy-header') this.refusedProxyHeader++;
    else if (reason === 'tls-hello') this.refusedTlsHello++;
    else if (reason === 'sni-no-match') this.refusedSniNoMatch++;
    else if (reason === 'fd-limit') this.refusedFdLimit++;
  }

  toMetrics(): ListenerMetrics {
    return {
      listener: this.listener,
      connectionsTotal: this.total,
      refusedUntrustedProxy: this.refusedUntrustedProxy,
      refusedProxyHeader: this.refusedProxyHeader,
      refusedTlsHello: this.refusedTlsHello,
      refusedSniNoMatch: this.refusedSniNoMatch,
      refusedFdLimit: this.refusedFdLimit,
    };
  }
}

export function backendMetrics(b: Backend, now: number): BackendMetrics {
  return {
    endpoint: b.endpointId,
    backend: b.id,
    address: b.address,
    port: b.port,
    connectionsActive: b.active,
    connectionsTotal: b.connectionsTotal,
    bytesIn: b.bytesIn,
    bytesOut: b.bytesOut,
    connectErrors: b.connectFailures,
    ejections: b.ejections,
    ejected: b.isEjected(now) ? 1 : 0,
    draining: b.draining ? 1 : 0,
  };
}
