// The report an edge sends to the API it follows (`POST /v1/edge/report`, EDGE-REPORT.md): who the
// edge is, the snapshot every worker serves, per-endpoint state (serving, or failed with the bind
// error) with its counters, and backend health. Built from the workers' answers by a pure function:
// an endpoint failed in any worker is failed; counters are summed.

import type { EdgeConfig } from './edge-config.js';
import type { WorkerReport } from './edge-pool.js';
import { mergeEndpointStates, type EndpointState } from './endpoint-state.js';

export interface EdgeIdentity {
  /** Stable per edge (edge-identity.ts). */
  id: string;
  /** --name, default the host name. */
  name: string;
  /** Pier's package version. */
  version: string;
  /** The reporting process (the cluster primary). */
  pid: number;
  workers: number;
  io?: 'handle' | 'socket';
}

export type ReportedEndpoint = EndpointState & { active: number; total: number; bytesIn: number; bytesOut: number; connectErrors: number };

export interface ReportedBackend {
  endpoint: string;
  id: string;
  active: number;
  ejected: boolean;
  connectFailures: number;
  lastError?: string;
}

export interface EdgeReport {
  edge: EdgeIdentity;
  /** Snapshot version every worker accepted, null before any. */
  applied: number | null;
  lastError: string | null;
  endpoints: ReportedEndpoint[];
  backends: ReportedBackend[];
  /** Tokens of the tls-alpn-01 challenges the applied snapshot answers (servedAcmeTokens), sorted. */
  acmeTokens: string[];
  /** ISO time at the edge. */
  at: string;
}

export interface ReportInput {
  identity: Omit<EdgeIdentity, 'workers' | 'io'>;
  applied: number | null;
  lastError: string | null;
  reports: readonly WorkerReport[];
  /** servedAcmeTokens() of the applied snapshot. */
  acmeTokens?: readonly string[];
  now: Date;
}

export function buildEdgeReport(input: ReportInput): EdgeReport {
  const { reports } = input;
  const counters = new Map<string, { active: number; total: number; bytesIn: number; bytesOut: number; connectErrors: number }>();
  for (const { metrics } of reports) {
    for (const e of metrics.endpoints) {
      const c = counters.get(e.endpoint) ?? { active: 0, total: 0, bytesIn: 0, bytesOut: 0, connectErrors: 0 };
      c.active += e.connectionsActive;
      c.total += e.connectionsTotal;
      c.bytesIn += e.bytesIn;
      c.bytesOut += e.bytesOut;
      c.connectErrors += e.connectErrors;
      counters.set(e.endpoint, c);
    }
  }
  const endpoints = mergeEndpointStates(reports.map((r) => r.status.endpoints)).map((state) => ({
    ...state,
    ...(counters.get(state.id) ?? { active: 0, total: 0, bytesIn: 0, bytesOut: 0, connectErrors: 0 }),
  }));

  const backends = new Map<string, ReportedBackend>();
  for (const { status } of reports) {
    for (const b of status.backends) {
      // Draining backends left the snapshot: what runs on them is not the API's concern any more.
      if (b.draining) continue;
      const key = `${b.endpoint}\u0000${b.id}`;
      const seen = backends.get(key);
      if (seen === undefined) {
        backends.set(key, {
          endpoint: b.endpoint,
          id: b.id,
          active: b.active,
          ejected: b.ejected,
          connectFailures: b.connectFailures,
          ...(b.lastError === undefined ? {} : { lastError: b.lastError }),
        });
        continue;
      }
      seen.active += b.active;
      seen.ejected ||= b.ejected;
      seen.connectFailures += b.connectFailures;
      if (seen.lastError === undefined && b.lastError !== undefined) seen.lastError = b.lastError;
    }
  }

  const io = reports[0]?.status.io;
  return {
    edge: { ...input.identity, workers: reports.length, ...(io === undefined ? {} : { io }) },
    applied: input.applied,
    lastError: input.lastError,
    endpoints,
    backends: [...backends.values()],
    acmeTokens: [...(input.acmeTokens ?? [])],
    at: input.now.toISOString(),
  };
}

/** What decides whether a report says something new (counters aside): a change is reported at once. */
export function reportFingerprint(report: EdgeReport): string {
  return JSON.stringify([
    report.applied,
    report.lastError,
    report.endpoints.map((e) => [e.id, e.revision, e.state, e.listeners.map((l) => [l.address, l.port, l.state, l.error?.code])]),
    report.backends.map((b) => [b.endpoint, b.id, b.ejected]),
    report.acmeTokens,
  ]);
}

/**
 * The tokens of the snapshot's tls-alpn-01 challenges that an endpoint answers: those of apps with
 * a tls: terminate endpoint (tls/route-tls.ts gives each such endpoint its app's challenges).
 * A snapshot is applied whole or not at all, so these are served once it is applied. An order
 * waits until every live edge reports its token (api/certificates/edges-applied.ts).
 */
export function servedAcmeTokens(config: EdgeConfig): string[] {
  const terminating = new Set(config.endpoints.filter((e) => e.tls === 'terminate').map((e) => e.app));
  const tokens = new Set<string>();
  for (const c of config.acmeChallenges ?? []) if (c.token !== undefined && terminating.has(c.app)) tokens.add(c.token);
  return [...tokens].sort();
}
