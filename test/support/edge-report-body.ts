// Edge reports as an edge sends them (EDGE-REPORT.md), for API tests that play the edge: each
// endpoint serving or failed with a bind error, at a revision.
import type { EdgeReportBody } from '../../api/edge-report-schema.js';

export interface ReportedState {
  id: string;
  revision: number | null;
  port: number;
  /** A bind error code (EADDRINUSE…) makes it failed. */
  failed?: string;
  active?: number;
  total?: number;
}

export interface ReportedBackendState {
  endpoint: string;
  id: string;
  ejected: boolean;
  connectFailures?: number;
  lastError?: string;
}

export function reportBody(edge: { id: string; name: string }, endpoints: ReportedState[], options: { applied?: number | null; backends?: ReportedBackendState[]; lastError?: string | null; acmeTokens?: string[] } = {}): EdgeReportBody {
  return {
    edge: { id: edge.id, name: edge.name, version: '0.1.0', pid: 4242, workers: 2, io: 'handle' },
    applied: options.applied === undefined ? 1 : options.applied,
    lastError: options.lastError ?? null,
    endpoints: endpoints.map((e) => ({
      id: e.id,
      name: `x/${e.port}`,
      revision: e.revision,
      state: e.failed ? ('failed' as const) : ('serving' as const),
      listeners: [
        e.failed
          ? {
              address: '127.0.0.1',
              port: e.port,
              state: 'failed' as const,
              error: { code: e.failed, message: `cannot listen on 127.0.0.1:${e.port}: address already in use (${e.failed})` },
              retryAt: new Date(Date.now() + 1000).toISOString(),
            }
          : { address: '127.0.0.1', port: e.port, state: 'bound' as const },
      ],
      active: e.active ?? 0,
      total: e.total ?? 0,
      bytesIn: 10,
      bytesOut: 20,
      connectErrors: 0,
    })),
    backends: (options.backends ?? []).map((b) => ({
      endpoint: b.endpoint,
      id: b.id,
      active: 0,
      ejected: b.ejected,
      connectFailures: b.connectFailures ?? 0,
      ...(b.lastError === undefined ? {} : { lastError: b.lastError }),
    })),
    // Absent unless given: an edge older than the tokens sends none.
    ...(options.acmeTokens === undefined ? {} : { acmeTokens: options.acmeTokens }),
    at: new Date().toISOString(),
  };
}
