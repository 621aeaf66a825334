// The Prometheus text of a standalone edge: counters summed across workers per label set, flags
// (draining, ejected) taken once, descriptor gauges from the fullest worker, an endpoint serving
// only when it serves in every worker, control-side numbers as they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderMetrics } from '../../proxy/edge-metrics-text.js';
import type { WorkerReport } from '../../proxy/edge-pool.js';

function report(pid: number, total: number, draining: number): WorkerReport {
  return {
    pid,
    status: {
      version: 7,
      listeners: [],
      backends: [],
      endpoints: [{ id: 'web/443', revision: 2, state: pid === 10 ? 'serving' : 'failed', listeners: [] }],
    },
    metrics: {
      version: 7,
      endpoints: [
        { endpoint: 'web/443', name: 'web/443', app: 'web', connectionsActive: 1, connectionsTotal: total, bytesIn: 10, bytesOut: 20, connectErrors: 0, retries: 0, idleTimeouts: 0, refusedAllowList: 1, refusedLimit: 0, refusedNoBackend: 0 },
      ],
      backends: [
        { endpoint: 'web/443', backend: 'i1', address: '127.0.0.1', port: 8080, connectionsActive: 1, connectionsTotal: total, bytesIn: 10, bytesOut: 20, connectErrors: 0, ejections: 0, ejected: 0, draining },
      ],
      listeners: [{ listener: '127.0.0.1:443', connectionsTotal: total, refusedUntrustedProxy: 0, refusedProxyHeader: 2, refusedTlsHello: 0, refusedSniNoMatch: 0, refusedFdLimit: 1 }],
      descriptors: { limit: 1024, open: 100 + pid, reserve: 52, refused: 3, errors: [{ code: 'EMFILE', op: 'accept', count: 2 }] },
    },
  } as unknown as WorkerReport;
}

test('counters from every worker are summed per label set and flags are not double counted', () => {
  const text = renderMetrics({
    control: { version: 7, source: 'file x', applies: { applied: 3, ignored: 1, rejected: 0 }, lastError: null, feedError: null },
    reports: [report(10, 5, 1), report(11, 7, 1)],
    workers: 2,
    restarts: 1,
  });
  const lines = new Set(text.split('\n'));
  for (const expected of [
    'pier_edge_config_version 7',
    'pier_edge_config_applies_total{result="applied"} 3',
    'pier_edge_workers 2',
    'pier_edge_worker_restarts_total 1',
    'pier_edge_endpoint_connections_total{endpoint="web/443",app="web",name="web/443"} 12',
    'pier_edge_endpoint_connections_active{endpoint="web/443",app="web",name="web/443"} 2',
    'pier_edge_endpoint_refused_total{endpoint="web/443",app="web",name="web/443",reason="allow-list"} 2',
    'pier_edge_backend_connections_total{endpoint="web/443",backend="i1",address="127.0.0.1",port="8080"} 12',
    'pier_edge_backend_draining{endpoint="web/443",backend="i1",address="127.0.0.1",port="8080"} 1',
    'pier_edge_listener_refused_total{listener="127.0.0.1:443",reason="proxy-header"} 4',
    'pier_edge_listener_refused_total{listener="127.0.0.1:443",reason="fd-limit"} 2',
    'pier_edge_descriptors_limit 1024',
    'pier_edge_descriptors_open 111',
    'pier_edge_descriptors_refused_total 6',
    'pier_edge_descriptor_errors_total{op="accept",code="EMFILE"} 4',
    'pier_edge_endpoint_serving{endpoint="web/443",name="web/443"} 0',
    '# TYPE pier_edge_endpoint_connections_total counter',
  ]) {
    assert.ok(lines.has(expected), `missing line: ${expected}\n${text}`);
  }
});
