// The swarm reconciler's pure core: from the release that should run, the app's swarm services and
// its instance rows, decide which services to create or scale, which instances leave the edge, and
// which services to scale to zero and remove. No I/O; swarm-reconciler.ts gathers and applies.
//
// Pier's rollout on a swarm: the new release's service runs in full beside the old one; only when
// each of its instances passes Pier's checks (and no live edge is still to report the endpoints)
// do the old instances leave the edge (drain); once drained, the old service is scaled to zero and
// removed. Swarm's own update and rollback are never used.
//
// A scale down goes the same way, since Swarm picks which tasks stop when a service's replicas go
// down and Pier could not drain them first: the smaller count is a new service of the same release
// and process (the next generation), and once each of its tasks is ready the older generation's
// instances leave the edge, drain, and that service is scaled to zero and removed. A scale up only
// raises the current service's replicas (nothing stops).
//
// A process that mounts volumes has one writer (swarm-volumes.ts): its new service is made, or
// scaled above zero, only once every other service of that process is gone, and those retire at
// once (drain, scale to zero, remove) even while the rest of the release is being rolled out —
// stop-then-start, as on one engine.

export interface PlanService {
  name: string;
  releaseId: string;
  process: string;
  replicas: number;
  /** 0 for a release's first service of the process; each scale down makes the next one. */
  generation: number;
}

export interface PlanInstance {
  id: string;
  releaseId: string;
  process: string;
  desired: 'running' | 'stopped';
  /** Running and passing its check (or it has none). */
  ready: boolean;
  drainUntil: Date | null;
  /** The service its task belongs to, when known. */
  service?: string | undefined;
}

export interface SwarmPlanInput {
  /** The release that should run and its counts, or null when nothing should (deleted, none yet). */
  release: { id: string; counts: { process: string; count: number }[] } | null;
  services: PlanService[];
  instances: PlanInstance[];
  /** A rollout of `release` runs and the previous release must be kept (not ready, or an edge still to report). */
  keepPrevious: boolean;
  /** Processes that mount volumes: stop-then-start (see above). */
  oneWriter?: ReadonlySet<string> | undefined;
  now: Date;
}

export type SwarmAction =
  /** Create the group's service (of that generation), or set the replicas of the one that exists. */
  | { type: 'ensure'; process: string; replicas: number; generation: number }
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
  const oneWriter = input.oneWriter ?? new Set<string>();

  /** The wanted release's older generations of a process, kept until the current one is ready. */
  const superseded = new Set<PlanService>();
  for (const [process, count] of wanted) {
    const mine = input.services.filter((s) => isWanted(s) && s.process === process).sort((a, b) => b.generation - a.generation);
    const current = mine[0];
    // One writer: nothing of the process starts while another of its services is still there.
    const alone = !oneWriter.has(process) || input.services.every((s) => s.process !== process || s === current);
    if (!alone && count > 0 && (!current || current.replicas < count)) {
      // Its old services retire below; the new one starts once they are gone.
    } else if (!current) actions.push({ type: 'ensure', process, replicas: count, generation: 0 });
    // A scale down: the smaller count as the next generation, so no task stops before it drained.
    else if (current.replicas > count) actions.push({ type: 'ensure', process, replicas: count, generation: current.generation + 1 });
    else if (current.replicas < count) actions.push({ type: 'ensure', process, replicas: count, generation: current.generation });
    const older = mine.slice(1);
    if (older.length === 0 || !current) continue;
    // One writer: an older generation never waits for the new one to be ready (it cannot be, before).
    if (oneWriter.has(process)) {
      for (const s of older) superseded.add(s);
      continue;
    }
    if (current.replicas !== count) continue;
    const ready = input.instances.filter((i) => i.service === current.name && i.desired === 'running' && i.ready).length;
    if (ready >= count) for (const s of older) superseded.add(s);
  }

  const others = input.services.filter((s) => !isWanted(s));
  // A rollout keeps the previous release serving, but not a one-writer process's: it stops first.
  const retiring = input.keepPrevious ? [...superseded, ...others.filter((s) => oneWriter.has(s.process) && wanted.has(s.process))] : [...others, ...superseded];
  for (const service of retiring) {
    const older = superseded.has(service);
    // A generation's instances are its tasks'; a release's other services are told apart by release and process.
    const mine = input.instances.filter((i) => i.releaseId === service.releaseId && i.process === service.process && (!older || i.service === service.name));
    const reason = older ? 'scaled down' : input.release === null ? 'the app has no release to run' : input.release.id === service.releaseId ? 'process removed from the release' : 'replaced by a newer release';
    for (const i of mine) if (i.desired === 'running') actions.push({ type: 'drain', instanceId: i.id, reason });
    const draining = mine.filter((i) => i.desired === 'stopped' && i.drainUntil && i.drainUntil > input.now);
    if (draining.length === 0 && mine.every((i) => i.desired === 'stopped')) actions.push({ type: 'remove', service: service.name });
    for (const i of draining) later(i.drainUntil as Date);
  }
  return { actions, retryAt };
}

/** True when every wanted process has at least its count of ready instances of the release. */
export function releaseReady(releaseId: string, counts: { process: string; count: number }[], instances: PlanInstance[]): boolean {
  return counts.every(({ process, count }) => instances.filter((i) => i.releaseId === releaseId && i.process === process && i.desired === 'running' && i.ready).length >= count);
}
