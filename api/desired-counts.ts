// How many instances of each process should run, and where that number came from. The rule:
// a `count` written in pier.toml wins at deploy time — the deploy clears that process's
// `pier scale` entry — and `pier scale` then sets it until the next deploy that writes one; a
// process whose manifest leaves `count` out keeps its `pier scale` count, else runs 1. A rollback
// changes code, not capacity: it clears nothing. Pure; docs/manifest.md ("count") explains it.
import type { App } from '../db/schema/index.js';
import type { Manifest } from './manifest.js';

export type CountSource =
  /** Written as `count` in the manifest of this release version. */
  | { from: 'manifest'; release: number }
  /** Set by `pier scale` at this time (null for entries older than the time was kept). */
  | { from: 'scale'; at: string | null }
  /** Neither: one instance. */
  | { from: 'default'; release: number };

export interface DesiredCount {
  process: string;
  count: number;
  source: CountSource;
}

/** The count when neither the manifest nor `pier scale` says one. */
export const DEFAULT_COUNT = 1;

export function desiredCounts(app: Pick<App, 'scale' | 'scaledAt'>, manifest: Manifest, version: number): DesiredCount[] {
  return Object.entries(manifest.processes).map(([process, spec]) => {
    const scaled = app.scale[process];
    if (scaled !== undefined) return { process, count: scaled, source: { from: 'scale', at: app.scaledAt[process] ?? null } };
    if (spec.count !== undefined) return { process, count: spec.count, source: { from: 'manifest', release: version } };
    return { process, count: DEFAULT_COUNT, source: { from: 'default', release: version } };
  });
}

/** process → count, as deployments' progress and the planner take it. */
export function countsByProcess(counts: DesiredCount[]): Record<string, number> {
  return Object.fromEntries(counts.map((c) => [c.process, c.count]));
}

/** The `pier scale` entries a deploy of `manifest` clears: those of processes whose manifest writes `count`. */
export function overridesClearedBy(app: Pick<App, 'scale'>, manifest: Manifest): Record<string, { was: number; now: number }> {
  const out: Record<string, { was: number; now: number }> = {};
  for (const [process, spec] of Object.entries(manifest.processes)) {
    const was = app.scale[process];
    if (spec.count !== undefined && was !== undefined) out[process] = { was, now: spec.count };
  }
  return out;
}

/** "manifest v3", "pier scale at 2026-…", "default (manifest v3 sets none)": for tables and describe. */
export function describeSource(source: CountSource): string {
  if (source.from === 'manifest') return `manifest v${source.release}`;
  if (source.from === 'scale') return source.at ? `pier scale at ${source.at}` : 'pier scale';
  return `default (v${source.release} sets no count)`;
}
