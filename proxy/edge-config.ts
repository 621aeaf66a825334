// The edge's configuration: an immutable, versioned snapshot of what to listen on and where to
// send connections. The API builds it; the edge validates it whole and swaps it in one step.
// Every field after the first five of EndpointConfig is optional: absent means "off" (docs/edge.md).

export type ProxyProtocolMode = 'none' | 'v1' | 'v2';

/** Optional PROXY v2 TLVs sent to the backend (ignored by v1). */
export type ProxyProtocolTlv = 'authority' | 'unique-id' | 'crc32c';

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

export interface AcceptProxyProtocol {
  /** CIDRs (or bare addresses) of the proxies allowed to connect; everyone else is refused. */
  trustedCidrs: string[];
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
  /** TLVs added to a v2 header: AUTHORITY (the SNI name, when known), UNIQUE_ID, CRC32C. */
  proxyProtocolTlvs?: ProxyProtocolTlv[];
  /** The listeners of this endpoint require a PROXY v1/v2 header, and only from these sources. */
  acceptProxyProtocol?: AcceptProxyProtocol;
  /** 'passthrough': route by the ClientHello's server name without terminating TLS. */
  tls?: 'none' | 'passthrough';
  /** Server names (exact, or `*.example.com` for one label) this passthrough endpoint serves. */
  sni?: string[];
  /** This passthrough endpoint takes hellos without a name or with a name nobody claims. */
  sniDefault?: boolean;
  /** Client CIDRs served; empty or absent: everyone (minus `deny`). */
  allow?: string[];
  /** Client CIDRs refused; wins over `allow`. */
  deny?: string[];
  /** Concurrent client connections to this endpoint; more are closed at once. */
  maxConnections?: number;
  /** Concurrent connections from one client address to this endpoint. */
  maxConnectionsPerClient?: number;
  /** Close a connection when neither side sent a byte for this long. */
  idleTimeoutMs?: number;
}

export interface EdgeConfig {
  /** Increases with every change; the edge ignores a snapshot older than the one it serves. */
  version: number;
  endpoints: EndpointConfig[];
}
