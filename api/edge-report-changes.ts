// What changed between two reports of one edge, for events and for waking rollouts: endpoints that
// went to failed (or failed with another error), endpoints that serve again, backends ejected or
// restored, and every endpoint whose reported state or revision moved. Pure.
import type { EdgeReportBody, ReportedBackendBody, ReportedEndpointBody } from './edge-report-schema.js';

export interface ReportChanges {
  failed: ReportedEndpointBody[];
  recovered: ReportedEndpointBody[];
  ejected: ReportedBackendBody[];
  restored: ReportedBackendBody[];
  /** Endpoint ids whose state or revision differs from the previous report (or that are new). */
  moved: string[];
}

export function reportChanges(prev: EdgeReportBody | null, next: EdgeReportBody): ReportChanges {
  const before = new Map((prev?.endpoints ?? []).map((e) => [e.id, e]));
  const out: ReportChanges = { failed: [], recovered: [], ejected: [], restored: [], moved: [] };
  for (const e of next.endpoints) {
    const p = before.get(e.id);
    if (!p || p.state !== e.state || p.revision !== e.revision) out.moved.push(e.id);
    if (e.state === 'failed' && (p?.state !== 'failed' || failureKey(p) !== failureKey(e))) out.failed.push(e);
    else if (e.state === 'serving' && p?.state === 'failed') out.recovered.push(e);
  }
  const backendsBefore = new Map((prev?.backends ?? []).map((b) => [`${b.endpoint}\0${b.id}`, b]));
  for (const b of next.backends) {
    const p = backendsBefore.get(`${b.endpoint}\0${b.id}`);
    if (b.ejected && !p?.ejected) out.ejected.push(b);
    else if (!b.ejected && p?.ejected) out.restored.push(b);
  }
  return out;
}

/** Which listeners fail and with which code: the same failure reported again is not news. */
function failureKey(e: ReportedEndpointBody): string {
  return e.listeners
    .filter((l) => l.state === 'failed')
    .map((l) => `${l.address}:${l.port}:${l.error?.code ?? ''}`)
    .sort()
    .join(',');
}
