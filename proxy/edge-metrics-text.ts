// Prometheus text exposition of a standalone edge: control-side state (version, applies, worker
// restarts) plus every worker's Edge.metrics(), counters summed across workers per label set.

import type { WorkerReport } from './edge-pool.js';
import type { ReportOutcome } from './edge-reporter.js';
import { mergeEndpointStates } from './endpoint-state.js';

export interface ControlState {
  /** Version every worker accepted last, or null before the first snapshot. */
  version: number | null;
  source: string;
  applies: { applied: number; ignored: number; rejected: number };
  /** The last snapshot refused (invalid, unreadable), null once one applies. */
  lastError: string | null;
  /** Why the API feed is down (api source), null while it is up. */
  feedError: string | null;
}

export interface AdminSnapshot {
  control: ControlState;
  reports: WorkerReport[];
  workers: number;
  restarts: number;
  /** Who the edge is in its reports (api source only). */
  edge?: { id: string; name: string } | null;
  /** How reporting to the API goes (api source only). */
  report?: ReportOutcome | null;
}

type Labels = Record<string, string>;
type Kind = 'counter' | 'gauge';

class Family {
  readonly samples = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly type: Kind,
    readonly help: string,
    /** Per-worker flags (draining, ejected) are the same in every worker: take the max, not the sum. */
    readonly combine: 'sum' | 'max' = 'sum',
  ) {}

  add(labels: Labels, value: number): void {
    const key = JSON.stringify(labels);
    const sample = this.samples.get(key);
    if (sample === undefined) this.samples.set(key, { labels, value });
    else sample.value = this.combine === 'sum' ? sample.value + value : Math.max(sample.value, value);
  }
}

export function renderMetrics(snapshot: AdminSnapshot): string {
  const families = new Map<string, Family>();
  const family = (name: string, type: Kind, help: string, combine: 'sum' | 'max' = 'sum'): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = new Family(name, type, help, combine)));
    return f;
  };
  const { control } = snapshot;
  family('pier_edge_config_version', 'gauge', 'Version of the snapshot the edge serves (0 before the first).').add({}, control.version ?? 0);
  const applies = family('pier_edge_config_applies_total', 'counter', 'Snapshots offered to the edge, by result.');
  for (const [result, n] of Object.entries(control.applies)) applies.add({ result }, n);
  family('pier_edge_workers', 'gauge', 'Edge worker processes answering.').add({}, snapshot.reports.length);
  family('pier_edge_workers_expected', 'gauge', 'Edge worker processes configured.').add({}, snapshot.workers);
  family('pier_edge_worker_restarts_total', 'counter', 'Edge workers restarted after dying.').add({}, snapshot.restarts);
  if (snapshot.report != null) {
    const reports = family('pier_edge_reports_total', 'counter', 'Reports sent to the API, by result.');
    reports.add({ result: 'delivered' }, snapshot.report.sent);
    reports.add({ result: 'failed' }, snapshot.report.failed);
  }
  const serving = family('pier_edge_endpoint_serving', 'gauge', '1 when every listener of the endpoint is bound in every worker, 0 while one is retried.');
  for (const e of mergeEndpointStates(snapshot.reports.map((r) => r.status.endpoints ?? []))) {
    serving.add({ endpoint: e.id, name: e.name ?? e.id }, e.state === 'serving' ? 1 : 0);
  }

  for (const { metrics } of snapshot.reports) {
    for (const e of metrics.endpoints) {
      const l = { endpoint: e.endpoint, app: e.app, name: e.name };
      family('pier_edge_endpoint_connections_active', 'gauge', 'Open client connections per endpoint.').add(l, e.connectionsActive);
      family('pier_edge_endpoint_connections_total', 'counter', 'Client connections accepted per endpoint.').add(l, e.connectionsTotal);
      family('pier_edge_endpoint_bytes_in_total', 'counter', 'Bytes received from clients.').add(l, e.bytesIn);
      family('pier_edge_endpoint_bytes_out_total', 'counter', 'Bytes sent to clients.').add(l, e.bytesOut);
      family('pier_edge_endpoint_connect_errors_total', 'counter', 'Failed backend connects per endpoint.').add(l, e.connectErrors);
      family('pier_edge_endpoint_retries_total', 'counter', 'Connects retried on another backend.').add(l, e.retries);
      family('pier_edge_endpoint_idle_timeouts_total', 'counter', 'Connections closed for idleness.').add(l, e.idleTimeouts);
      const refused = family('pier_edge_endpoint_refused_total', 'counter', 'Connections refused per endpoint, by reason.');
      refused.add({ ...l, reason: 'allow-list' }, e.refusedAllowList);
      refused.add({ ...l, reason: 'limit' }, e.refusedLimit);
      refused.add({ ...l, reason: 'no-backend' }, e.refusedNoBackend);
      refused.add({ ...l, reason: 'fd-limit' }, e.refusedFdLimit);
      refused.add({ ...l, reason: 'tls-handshake' }, e.refusedTlsHandshake ?? 0);
      refused.add({ ...l, reason: 'client-cert' }, e.refusedClientCert ?? 0);
    }
    for (const b of metrics.backends) {
      const l = { endpoint: b.endpoint, backend: b.backend, address: b.address, port: String(b.port) };
      family('pier_edge_backend_connections_active', 'gauge', 'Open connections per backend.').add(l, b.connectionsActive);
      family('pier_edge_backend_connections_total', 'counter', 'Connections sent to a backend.').add(l, b.connectionsTotal);
      family('pier_edge_backend_bytes_in_total', 'counter', 'Bytes from clients forwarded to the backend.').add(l, b.bytesIn);
      family('pier_edge_backend_bytes_out_total', 'counter', 'Bytes from the backend forwarded to clients.').add(l, b.bytesOut);
      family('pier_edge_backend_connect_errors_total', 'counter', 'Failed connects to the backend.').add(l, b.connectErrors);
      family('pier_edge_backend_ejections_total', 'counter', 'Times the backend was ejected after consecutive failures.').add(l, b.ejections);
      family('pier_edge_backend_ejected', 'gauge', '1 while the backend is ejected (in any worker).', 'max').add(l, b.ejected);
      family('pier_edge_backend_draining', 'gauge', '1 while the backend is removed and its connections still run.', 'max').add(l, b.draining);
    }
    for (const li of metrics.listeners) {
      const l = { listener: li.listener };
      family('pier_edge_listener_connections_total', 'counter', 'Connections accepted per listening address:port.').add(l, li.connectionsTotal);
      const refused = family('pier_edge_listener_refused_total', 'counter', 'Connections refused before an endpoint was chosen, by reason.');
      refused.add({ ...l, reason: 'untrusted-proxy' }, li.refusedUntrustedProxy);
      refused.add({ ...l, reason: 'proxy-header' }, li.refusedProxyHeader);
      refused.add({ ...l, reason: 'tls-hello' }, li.refusedTlsHello);
      refused.add({ ...l, reason: 'sni-no-match' }, li.refusedSniNoMatch);
      refused.add({ ...l, reason: 'fd-limit' }, li.refusedFdLimit);
    }
    const fd = metrics.descriptors;
    // Each process has its own descriptor table: the gauges show the fullest one.
    family('pier_edge_descriptors_limit', 'gauge', 'Soft limit of open files of an edge process (-1: unknown).', 'max').add({}, fd.limit ?? -1);
    family('pier_edge_descriptors_open', 'gauge', 'Open descriptors of the edge process that has the most.', 'max').add({}, fd.open);
    family('pier_edge_descriptors_reserve', 'gauge', 'Descriptors kept back for backend connects of admitted clients.', 'max').add({}, fd.reserve);
    family('pier_edge_descriptors_refused_total', 'counter', 'Clients closed at once because descriptors ran low.').add({}, fd.refused);
    const errors = family('pier_edge_descriptor_errors_total', 'counter', 'Accepts and backend connects that failed, by error (EMFILE, ENFILE ...).');
    for (const e of fd.errors) errors.add({ op: e.op, code: e.code }, e.count);
  }

  const lines: string[] = [];
  for (const f of families.values()) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const { labels, value } of f.samples.values()) lines.push(`${f.name}${formatLabels(labels)} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}
