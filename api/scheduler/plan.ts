// The reconciler's pure core: from what should run and what runs, decide what to do.
// No I/O here; api/scheduler/reconciler.ts gathers the inputs and applies the actions.
import type { ContainerState } from '../runtime/runtime.js';

export interface DesiredProcess {
  process: string;
  count: number;
}

export interface Strategy {
  type: 'rolling' | 'immediate' | 'bluegreen';
  /** Rolling: new instances that may run beyond the count. */
  maxSurge: number;
  /** Rolling: instances that may be out of service at once. */
  maxUnavailable: number;
}

export interface ActualInstance {
  id: string;
  releaseId: string;
  process: string;
  desired: 'running' | 'stopped';
  /** The container's state, or null when the container is gone. */
  container: ContainerState | null;
  /**
   * The row was written but its container was never created (a start interrupted between its
   * two phases): create it now, under the same name, rather than call it failed.
   */
  pending?: boolean;
  /** Running and, when the process has a check, passing it. */
  ready: boolean;
  /** For an instance leaving: when it may be stopped. */
  drainUntil: Date | null;
  createdAt: Date;
}

export interface PlanInput {
  /** The release that should run, or null when nothing should. */
  releaseId: string | null;
  processes: DesiredProcess[];
  strategy: Strategy;
  instances: ActualInstance[];
  /** Containers labelled for this app that no instance row knows. */
  orphans: string[];
  /** Per process of the current release: no new start before this time (crash-loop backoff). */
  backoffUntil: Record<string, Date>;
  /**
   * Keep every instance of other releases (no "replaced" drain) while a live edge has not yet
   * said whether it serves the new release's endpoints: when it then cannot, the rollout fails
   * and the previous release serves on without having been stopped.
   */
  holdPrevious?: boolean;
  /**
   * Processes that mount volumes: a volume has one writer, so they roll out stop-then-start one
   * slot at a time, whatever the strategy: an old instance leaves (and its container stops)
   * before a new one starts.
   */
  stopFirst?: ReadonlySet<string>;
  /** Processes whose volume is busy (a restore in place): nothing of them starts now. */
  held?: ReadonlySet<string>;
  now: Date;
}

export type Action =
  /** The container of an instance that should run has stopped: record why, mark it exited. */
  | { type: 'exited'; instanceId: string }
  | { type: 'start'; releaseId: string; process: string }
  /** Create the container of an instance row that has none yet (the second phase of a start). */
  | { type: 'create'; instanceId: string }
  /** Take an instance out of the route table; it is stopped once its drain time has passed. */
  | { type: 'drain'; instanceId: string; reason: string }
  | { type: 'stop'; instanceId: string }
  | { type: 'remove-orphan'; containerId: string };

export interface Plan {
  actions: Action[];
  /** When to look again: a held-back start or a drain that ends, if any. */
  retryAt: Date | null;
}

const LIVE: ReadonlySet<ContainerState> = new Set(['created', 'running', 'restarting', 'paused']);

export function isLive(state: ContainerState | null): boolean {
  return state !== null && LIVE.has(state);
}

export function plan(input: PlanInput): Plan {
  const actions: Action[] = [];
  let retryAt = null as Date | null;
  const later = (at: Date) => {
    if (!retryAt || at < retryAt) retryAt = at;
  };
  const drain = (list: ActualInstance[], reason: string) => {
    for (const i of list) actions.push({ type: 'drain', instanceId: i.id, reason });
  };
  const replace = (list: ActualInstance[]) => {
    if (!input.holdPrevious) drain(list, 'replaced by a newer release');
  };

  const live: ActualInstance[] = [];
  /** Leaving instances whose container still runs, per process (a stop-then-start waits for them). */
  const leaving = new Map<string, number>();
  for (const inst of input.instances) {
    if (inst.desired === 'stopped' && isLive(inst.container)) leaving.set(inst.process, (leaving.get(inst.process) ?? 0) + 1);
    if (inst.desired === 'running') {
      if (isLive(inst.container)) live.push(inst);
      else if (inst.pending) {
        // Counted as live: created now, it then rolls like any instance of its release.
        live.push(inst);
        actions.push({ type: 'create', instanceId: inst.id });
      } else actions.push({ type: 'exited', instanceId: inst.id });
    } else if (isLive(inst.container)) {
      // Leaving: stop once drained.
      if (!inst.drainUntil || inst.drainUntil <= input.now) actions.push({ type: 'stop', instanceId: inst.id });
      else later(inst.drainUntil);
    }
  }

  const { strategy } = input;
  const current = live.filter((i) => i.releaseId === input.releaseId);
  const others = live.filter((i) => i.releaseId !== input.releaseId);
  const known = new Set(input.processes.map((p) => p.process));
  let complete = true;

  for (const { process, count } of input.processes) {
    const all = current.filter((i) => i.process === process);
    // Keep the ready ones first, and among those the oldest.
    all.sort((a, b) => Number(b.ready) - Number(a.ready) || a.createdAt.getTime() - b.createdAt.getTime());
    const mine = all.slice(0, count);
    drain(all.slice(count), 'scaled down');
    const old = others.filter((i) => i.process === process).sort((a, b) => Number(a.ready) - Number(b.ready) || a.createdAt.getTime() - b.createdAt.getTime());
    const readyMine = mine.filter((i) => i.ready).length;
    if (readyMine < count) complete = false;

    let starts = count - mine.length;
    if (input.stopFirst?.has(process)) {
      // One writer per volume: start only into slots no container (old or leaving) holds, and
      // free a slot only when the new instances so far are ready.
      const stopping = leaving.get(process) ?? 0;
      starts = Math.max(0, count - mine.length - old.length - stopping);
      if (starts === 0 && stopping === 0 && old.length > 0 && readyMine === mine.length) replace(old.slice(0, 1));
      if (input.held?.has(process)) starts = 0;
    } else if (strategy.type === 'rolling') {
      starts = Math.max(0, Math.min(starts, count + strategy.maxSurge - mine.length - old.length));
      const keep = Math.max(0, count - strategy.maxUnavailable - readyMine);
      replace(old.slice(0, Math.max(0, old.length - keep)));
    } else if (strategy.type === 'immediate') {
      replace(old);
    }
    if (starts > 0) {
      const until = input.backoffUntil[process];
      if (until && until > input.now) later(until);
      else for (let n = 0; n < starts; n++) actions.push({ type: 'start', releaseId: input.releaseId as string, process });
    }
  }

  for (const inst of current) {
    if (!known.has(inst.process)) actions.push({ type: 'drain', instanceId: inst.id, reason: 'process removed from the release' });
  }
  // What the new release does not replace process by process leaves once it runs in full.
  const leftover = others.filter((i) => !known.has(i.process) || (strategy.type === 'bluegreen' && !input.stopFirst?.has(i.process)));
  if (input.releaseId === null) drain(others, 'the app has no release to run');
  else if (complete || strategy.type === 'immediate') replace(leftover.filter((i) => !actions.some((a) => a.type === 'drain' && a.instanceId === i.id)));

  for (const containerId of input.orphans) actions.push({ type: 'remove-orphan', containerId });
  return { actions, retryAt };
}
