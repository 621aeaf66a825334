// The edge's configuration: an immutable, versioned snapshot of what to listen on and where to
// send connections. The API builds it; the edge validates it whole and swaps it in one step.

export type ProxyProtocolMode = 'none' | 'v1' | 'v2';

export interface BindAddress {
  /** An IPv4 or IPv6 literal (no brackets). */
  address: string;
  port: number;
}

export interface BackendConfig {
  /** Stable id (the instance id); used to keep connection counts and drain across snapshots. */
  id: string;
  address: string;
  port: number;
}

export interface EndpointConfig {
  /** Stable id, e.g. `echo/9000`. */
  id: string;
  /** The app that owns the endpoint, for logs and metrics. */
  app: string;
  bind: BindAddress[];
  /** PROXY protocol header sent to the backend before the client's bytes. */
  proxyProtocol: ProxyProtocolMode;
  backends: BackendConfig[];
}

export interface EdgeConfig {
  /** Increases with every change; the edge ignores a snapshot older than the one it serves. */
  version: number;
  endpoints: EndpointConfig[];
}
