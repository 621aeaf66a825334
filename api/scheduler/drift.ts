// Which apps need a reconcile pass, from one listing of every container and every active instance
// row: the periodic resync enqueues only those, instead of every app (a pass per app costs queries
// and an engine listing each; at a thousand apps that is seconds of CPU every resync). Pure.
import { isLive } from './plan.js';
import { DEFAULT_COUNT } from '../desired-counts.js';
import type { ContainerState } from '../runtime/runtime.js';

export interface DriftApp {
  id: string;
  currentReleaseId: string | null;
  scale: Record<string, number>;
  /** Set for a deleted app: every container it still has is to be removed. */
  deletedAt?: Date | null;
  /** Process counts of the current release's manifest (null without a release; a count left out is 1). */
  processes: Record<string, { count?: number }> | null;
}

export interface DriftRow {
  id: string;
  appId: string;
  releaseId: string;
  process: string;
  desiredState: 'running' | 'stopped';
  observedState: string;
  containerId: string | null;
  /** Its address on Pier's network (null before it ran, or for one started before the network). */
  address?: string | null;
}

export interface DriftContainer {
  id: string;
  state: ContainerState;
  appId: string | undefined;
  instanceId: string | undefined;
}

export interface DriftInput {
  apps: DriftApp[];
  /** Rows that should run or were last seen starting/running (the rest are history). */
  rows: DriftRow[];
  containers: DriftContainer[];
  /** Apps with a deployment in state running: their rollout needs settling. */
  rolling: Set<string>;
  /** Stopped containers an app keeps; more means garbage to collect. */
  keepStopped: number;
}

/** App id → the first reason found that it differs from what it should be. */
export function findDrift(input: DriftInput): Map<string, string> {
  const out = new Map<string, string>();
  const mark = (appId: string, why: string) => {
    if (!out.has(appId)) out.set(appId, why);
  };
  const appsById = new Map(input.apps.map((a) => [a.id, a]));
  const byInstance = new Map<string, DriftContainer>();
  const stoppedPerApp = new Map<string, number>();
  for (const c of input.containers) {
    if (c.instanceId) byInstance.set(c.instanceId, c);
    if (c.appId && !isLive(c.state)) stoppedPerApp.set(c.appId, (stoppedPerApp.get(c.appId) ?? 0) + 1);
  }

  for (const appId of input.rolling) mark(appId, 'a rollout is running');

  const counts = new Map<string, Map<string, number>>();
  const active = new Set<string>();
  for (const row of input.rows) {
    active.add(row.id);
    const app = appsById.get(row.appId);
    if (!app) continue;
    const c = byInstance.get(row.id);
    if (row.desiredState === 'stopped') {
      mark(app.id, c && isLive(c.state) ? 'an instance is to stop' : 'a stopped instance is not recorded as stopped');
    } else if (!c) mark(app.id, 'an instance has no container');
    else if (!isLive(c.state)) mark(app.id, 'an instance exited');
    else if (row.containerId !== c.id || (c.state === 'running' && row.observedState !== 'running')) mark(app.id, 'an instance is not recorded as it runs');
    else if (c.state === 'running' && !row.address) mark(app.id, 'an instance has no address on the network');
    else if (row.releaseId !== app.currentReleaseId) mark(app.id, 'an instance of another release runs');
    else {
      let perProcess = counts.get(app.id);
      if (!perProcess) counts.set(app.id, (perProcess = new Map()));
      perProcess.set(row.process, (perProcess.get(row.process) ?? 0) + 1);
    }
  }

  for (const app of input.apps) {
    const perProcess = counts.get(app.id);
    for (const [process, spec] of Object.entries(app.processes ?? {})) {
      if ((perProcess?.get(process) ?? 0) !== (app.scale[process] ?? spec.count ?? DEFAULT_COUNT)) mark(app.id, `process ${process} runs a different count`);
    }
  }

  for (const c of input.containers) {
    if (!c.appId || !appsById.has(c.appId)) continue; // not an app of this database: never touched
    if (isLive(c.state) && !active.has(c.instanceId ?? '')) mark(c.appId, 'a container runs that no instance should');
  }
  for (const [appId, n] of stoppedPerApp) if (n > input.keepStopped && appsById.has(appId)) mark(appId, 'stopped containers to collect');
  for (const c of input.containers) if (c.appId && appsById.get(c.appId)?.deletedAt) mark(c.appId, 'a deleted app still has containers');
  return out;
}
