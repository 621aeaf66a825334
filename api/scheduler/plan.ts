// The reconciler's pure core: from what should run and what runs, decide what to do.
// No I/O here; api/scheduler/reconciler.ts gathers the inputs and applies the actions.
import type { ContainerState } from '../runtime/runtime.js';

export interface DesiredProcess {
  process: string;
  count: number;
}

export interface ActualInstance {
  id: string;
  releaseId: string;
  process: string;
  desired: 'running' | 'stopped';
  /** The container's state, or null when the container is gone. */
  container: ContainerState | null;
  createdAt: Date;
}

export interface PlanInput {
  /** The release that should run, or null when nothing should. */
  releaseId: string | null;
  processes: DesiredProcess[];
  instances: ActualInstance[];
  /** Containers labelled for this app that no instance row knows. */
  orphans: string[];
  /** Per process of the current release: no new start before this time (crash-loop backoff). */
  backoffUntil: Record<string, Date>;
  now: Date;
}

export type Action =
  /** The container of an instance that should run has stopped: record why, mark it exited. */
  | { type: 'exited'; instanceId: string }
  | { type: 'start'; releaseId: string; process: string }
  | { type: 'stop'; instanceId: string; reason: string }
  | { type: 'remove-orphan'; containerId: string };

export interface Plan {
  actions: Action[];
  /** When to look again because a start was held back, if one was. */
  retryAt: Date | null;
}

const LIVE: ReadonlySet<ContainerState> = new Set(['created', 'running', 'restarting', 'paused']);

export function plan(input: PlanInput): Plan {
  const actions: Action[] = [];
  let retryAt = null as Date | null;

  const wanted = input.instances.filter((i) => i.desired === 'running');
  const live: ActualInstance[] = [];
  for (const inst of wanted) {
    if (inst.container !== null && LIVE.has(inst.container)) live.push(inst);
    else actions.push({ type: 'exited', instanceId: inst.id });
  }

  // An instance told to stop whose container still runs: finish stopping it.
  for (const inst of input.instances) {
    if (inst.desired === 'stopped' && inst.container !== null && LIVE.has(inst.container)) {
      actions.push({ type: 'stop', instanceId: inst.id, reason: 'stopping' });
    }
  }

  const current = live.filter((i) => i.releaseId === input.releaseId);
  let complete = true;
  for (const { process, count } of input.processes) {
    const mine = current.filter((i) => i.process === process).sort(byAge);
    if (mine.length < count) {
      complete = false;
      const until = input.backoffUntil[process];
      if (until && until > input.now) {
        if (!retryAt || until < retryAt) retryAt = until;
      } else {
        for (let n = mine.length; n < count; n++) actions.push({ type: 'start', releaseId: input.releaseId as string, process });
      }
    }
    if (mine.some((i) => i.container !== 'running')) complete = false;
    for (const extra of mine.slice(count)) actions.push({ type: 'stop', instanceId: extra.id, reason: 'scaled down' });
  }
  const known = new Set(input.processes.map((p) => p.process));
  for (const inst of current) {
    if (!known.has(inst.process)) actions.push({ type: 'stop', instanceId: inst.id, reason: 'process removed from the release' });
  }

  // Instances of other releases keep serving until the current release runs in full.
  if (complete || input.releaseId === null) {
    for (const inst of live) {
      if (inst.releaseId !== input.releaseId) actions.push({ type: 'stop', instanceId: inst.id, reason: 'replaced by a newer release' });
    }
  }

  for (const containerId of input.orphans) actions.push({ type: 'remove-orphan', containerId });
  return { actions, retryAt };
}

/** True when every process of the current release has its count of running instances. */
export function isRolledOut(input: Pick<PlanInput, 'releaseId' | 'processes' | 'instances'>): boolean {
  const running = input.instances.filter((i) => i.desired === 'running' && i.container === 'running');
  const current = running.filter((i) => i.releaseId === input.releaseId);
  const others = running.filter((i) => i.releaseId !== input.releaseId);
  return others.length === 0 && input.processes.every((p) => current.filter((i) => i.process === p.process).length >= p.count);
}

function byAge(a: ActualInstance, b: ActualInstance): number {
  return a.createdAt.getTime() - b.createdAt.getTime();
}
