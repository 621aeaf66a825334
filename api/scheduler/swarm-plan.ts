// The swarm reconciler's pure core: from the release that should run, the app's swarm services and
// its instance rows, decide which services to create or scale, which instances leave the edge, and
// which services to scale to zero and remove. No I/O; swarm-reconciler.ts gathers and applies.
//
// Pier's rollout on a swarm: the new release's service runs in full beside the old one; only when
// each of its instances passes Pier's checks (and no live edge is still to report the endpoints)
// do the old instances leave the edge (drain); once drained, the old service is scaled to zero and
// removed. Swarm's own update and rollback are never used.

export interface PlanService {
  name: string;
  releaseId: string;
  process: string;
  replicas: number;
}

export interface PlanInstance {
  id: string;
  releaseId: string;
  process: string;
  desired: 'running' | 'stopped';
  /** Running and passing its check (or it has none). */
  ready: boolean;
  drainUntil: Date | null;
}

export interface SwarmPlanInput {
  /** The release that should run and its counts, or null when nothing should (deleted, none yet). */
  release: { id: string; counts: { process: string; count: number }[] } | null;
  services: PlanService[];
  instances: PlanInstance[];
  /** A rollout of `release` runs and the previous release must be kept (not ready, or an edge still to report). */
  keepPrevious: boolean;
  now: Date;
}

export type SwarmAction =
  /** Create the group's service, or set the replicas of the one that exists. */
  | { type: 'ensure'; process: string; replicas: number }
  /** Take an instance out of the edge: it leaves once drained. */
  | { type: 'drain'; instanceId: string; reason: string }
  /** Scale a service no longer wanted to zero and remove it (its instances have drained). */
  | { type: 'remove'; service: string };

export interface SwarmPlan {
  actions: SwarmAction[];
  /** When a drain ends: look again then. */
  retryAt: Date | null;
}

export function planSwarm(input: SwarmPlanInput): SwarmPlan {
  const actions: SwarmAction[] = [];
  let retryAt: Date | null = null;
  const later = (at: Date) => {
    if (!retryAt || at < retryAt) retryAt = at;
  };
  const wanted = new Map((input.release?.counts ?? []).map((c) => [c.process, c.count]));
  const isWanted = (s: { releaseId: string; process: string }) => input.release !== null && s.releaseId === input.release.id && wanted.has(s.process);

  for (const [process, count] of wanted) {
    const service = input.services.find((s) => isWanted(s) && s.process === process);
    if (!service || service.replicas !== count) actions.push({ type: 'ensure', process, replicas: count });
  }
  // Instances beyond the count (a scale down): Swarm picks which tasks stop (it balances nodes),
  // so they leave by the service's own scaling; nothing to drain here (the tasks' ends are observed).

  const retiring = input.services.filter((s) => !isWanted(s));
  if (!input.keepPrevious) {
    for (const service of retiring) {
      const mine = input.instances.filter((i) => i.releaseId === service.releaseId && i.process === service.process);
      const reason = input.release === null ? 'the app has no release to run' : input.release.id === service.releaseId ? 'process removed from the release' : 'replaced by a newer release';
      for (const i of mine) if (i.desired === 'running') actions.push({ type: 'drain', instanceId: i.id, reason });
      const draining = mine.filter((i) => i.desired === 'stopped' && i.drainUntil && i.drainUntil > input.now);
      if (draining.length === 0 && mine.every((i) => i.desired === 'stopped')) actions.push({ type: 'remove', service: service.name });
      for (const i of draining) later(i.drainUntil as Date);
    }
  }
  return { actions, retryAt };
}

/** True when every wanted process has at least its count of ready instances of the release. */
export function releaseReady(releaseId: string, counts: { process: string; count: number }[], instances: PlanInstance[]): boolean {
  return counts.every(({ process, count }) => instances.filter((i) => i.releaseId === releaseId && i.process === process && i.desired === 'running' && i.ready).length >= count);
}
