// Prometheus text exposition of a standalone edge: control-side state (version, applies, worker
// restarts) plus every worker's data-plane numbers, summed across workers per label set.

import type { WorkerReport } from './edge-pool.js';

export interface ControlState {
  /** Version every worker accepted last, or null before the first snapshot. */
  version: number | null;
  source: string;
  applies: { applied: number; ignored: number; rejected: number };
  lastError: string | null;
}

export interface AdminSnapshot {
  control: ControlState;
  reports: WorkerReport[];
  workers: number;
  restarts: number;
}

type Labels = Record<string, string>;

class Family {
  readonly samples = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly type: 'counter' | 'gauge' | 'untyped',
    readonly help: string,
  ) {}

  add(labels: Labels, value: number): void {
    const key = JSON.stringify(labels);
    const sample = this.samples.get(key);
    if (sample === undefined) this.samples.set(key, { labels, value });
    else sample.value += value;
  }
}

export function renderMetrics(snapshot: AdminSnapshot): string {
  const families = new Map<string, Family>();
  const family = (name: string, type: Family['type'], help: string): Family => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = new Family(name, type, help)));
    return f;
  };
  const { control } = snapshot;
  family('pier_edge_config_version', 'gauge', 'Version of the snapshot the edge serves (0 before the first).').add({}, control.version ?? 0);
  const applies = family('pier_edge_config_applies_total', 'counter', 'Snapshots offered to the edge, by result.');
  for (const [result, n] of Object.entries(control.applies)) applies.add({ result }, n);
  family('pier_edge_workers', 'gauge', 'Edge worker processes answering.').add({}, snapshot.reports.length);
  family('pier_edge_workers_expected', 'gauge', 'Edge worker processes configured.').add({}, snapshot.workers);
  family('pier_edge_worker_restarts_total', 'counter', 'Edge workers restarted after dying.').add({}, snapshot.restarts);

  const listeners = family('pier_edge_listeners', 'gauge', 'Listening sockets, per endpoint (shared by all workers).');
  const first = snapshot.reports[0];
  for (const l of first?.status.listeners ?? []) listeners.add({ endpoint: l.endpoint }, 1);
  const active = family('pier_edge_backend_connections', 'gauge', 'Connections open to a backend, summed over workers.');
  const failures = family('pier_edge_backend_connect_failures', 'gauge', 'Consecutive failed connects to a backend, summed over workers.');
  const draining = family('pier_edge_backend_draining', 'gauge', 'Backends removed from the snapshot whose connections still run.');
  for (const report of snapshot.reports) {
    for (const b of report.status.backends) {
      const labels = { endpoint: b.endpoint, backend: b.id };
      active.add(labels, b.active);
      failures.add(labels, b.connectFailures);
      draining.add(labels, b.draining ? 1 : 0);
    }
    if (report.metrics !== null && report.metrics !== undefined) flatten(report.metrics, 'pier_edge', {}, family);
  }

  const lines: string[] = [];
  for (const f of families.values()) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const { labels, value } of f.samples.values()) lines.push(`${f.name}${formatLabels(labels)} ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The data plane's own counters (`edge.metrics()`): numbers become samples named after their path,
 * and the string fields of an object in a list become its labels (`{ endpoint, backend }`).
 */
function flatten(value: unknown, name: string, labels: Labels, family: (n: string, t: Family['type'], h: string) => Family): void {
  if (typeof value === 'number' && Number.isFinite(value)) {
    const type = name.endsWith('_total') ? 'counter' : 'untyped';
    family(name, type, 'Data-plane counter, summed over workers.').add(labels, value);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) continue;
      const own: Labels = { ...labels };
      for (const [k, v] of Object.entries(item)) if (typeof v === 'string') own[snake(k)] = v;
      flatten(Object.fromEntries(Object.entries(item).filter(([, v]) => typeof v !== 'string')), name, own, family);
    }
    return;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string' || typeof v === 'boolean') continue;
      flatten(v, `${name}_${snake(k)}`, labels, family);
    }
  }
}

function snake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase();
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}
