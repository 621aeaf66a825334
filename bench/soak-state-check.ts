// The soak's end checks as a pure function of one snapshot: what the database holds, what the API
// says, what `docker ps` shows, and what the soak's own requests were told. Each check passes or
// fails with the first few differences; `info` lines are reported but never fail the run.

export interface StateSnapshot {
  apps: { id: string; name: string; currentReleaseId: string | null }[];
  releases: { id: string; appId: string; version: number }[];
  deployments: { id: string; appId: string; releaseId: string; state: string }[];
  /** Every event, ordered by id. */
  events: { id: number; appId: string | null; type: string; deploymentId: string | null; instanceId: string | null }[];
  instances: { id: string; appId: string; releaseId: string; process: string; desired: string; observed: string; health: string; started: boolean }[];
  /** Per app name: release versions the API lists. */
  apiReleases: Map<string, number[]>;
  /** Per app name: event ids the API lists, read from the start with `after`. */
  apiEvents: Map<string, number[]>;
  /** Per app name: instance ids the API lists as running. */
  apiRunning: Map<string, string[]>;
  /** Per app name: desired instances per process, as the API describes the app. */
  desired: Map<string, Record<string, number>>;
  /** Per app name: event ids the soak's follower saw during the run. */
  followed: Map<string, number[]>;
  /** Containers on the soak's engine (all of them: the engine is the soak's). */
  containers: { id: string; name: string; running: boolean; labels: Record<string, string> }[];
  /** What the soak's requests were told. */
  seen: { deployments: Map<string, { app: string; version: number }>; scaled: Map<string, number>; execs: Map<string, number> };
  /** Database restarts during the run (for the info line on id holes). */
  databaseRestarts: number;
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** Counts, or the first differences. */
  detail: string;
  /** Reported only; never fails the run. */
  info?: boolean;
}

/** Deployment states that are final. */
const FINAL = new Set(['succeeded', 'failed', 'superseded', 'cancelled']);

export function checkState(s: StateSnapshot): CheckResult[] {
  const appName = new Map(s.apps.map((a) => [a.id, a.name]));
  const results: CheckResult[] = [];
  const add = (name: string, problems: string[], counted: string, info = false): void => {
    results.push({ name, ok: problems.length === 0, detail: problems.length === 0 ? counted : `${problems.length}: ${problems.slice(0, 5).join('; ')}`, ...(info ? { info } : {}) });
  };
  const eventsOf = (pred: (e: StateSnapshot['events'][number]) => boolean) => s.events.filter(pred);

  // Releases: numbered 1..N per app with no hole, each listed by the API, each with a deployment.
  const releaseProblems: string[] = [];
  for (const app of s.apps) {
    const versions = s.releases.filter((r) => r.appId === app.id).map((r) => r.version).sort((a, b) => a - b);
    if (versions.some((v, i) => v !== i + 1)) releaseProblems.push(`${app.name} has versions ${versions.join(',')}`);
    const listed = [...(s.apiReleases.get(app.name) ?? [])].sort((a, b) => a - b);
    if (listed.join(',') !== versions.join(',')) releaseProblems.push(`${app.name}: the API lists ${listed.join(',')}, the database has ${versions.join(',')}`);
  }
  const deployed = new Set(s.deployments.map((d) => d.releaseId));
  for (const r of s.releases) if (!deployed.has(r.id)) releaseProblems.push(`${appName.get(r.appId)} v${r.version} has no deployment`);
  add('releases: numbered without holes, listed by the API, each rolled out', releaseProblems, `${s.releases.length} releases`);

  // Every deployment a request was told about exists, for the release it was told.
  const versionOf = new Map(s.releases.map((r) => [r.id, r.version]));
  const byId = new Map(s.deployments.map((d) => [d.id, d]));
  const lost: string[] = [];
  for (const [id, told] of s.seen.deployments) {
    const d = byId.get(id);
    if (!d) lost.push(`${told.app} deployment ${id} (v${told.version}) is not in the database`);
    else if (versionOf.get(d.releaseId) !== told.version) lost.push(`${id}: told v${told.version}, the database says v${versionOf.get(d.releaseId)}`);
  }
  add('deployments the API answered with are all there', lost, `${s.seen.deployments.size} answered, all found`);

  // Every deployment ended, with its start and end events.
  const unfinished = s.deployments.filter((d) => !FINAL.has(d.state)).map((d) => `${appName.get(d.appId)} ${d.id} is ${d.state}`);
  add('every deployment ended (succeeded, failed, superseded or cancelled)', unfinished, `${s.deployments.length} deployments`);
  const depEvents = new Map<string, Set<string>>();
  for (const e of s.events) if (e.deploymentId) (depEvents.get(e.deploymentId) ?? depEvents.set(e.deploymentId, new Set()).get(e.deploymentId)!).add(e.type);
  const missingDepEvents: string[] = [];
  for (const d of s.deployments) {
    const types = depEvents.get(d.id) ?? new Set();
    if (!types.has('deploy.started') && !types.has('deploy.rollback')) missingDepEvents.push(`${d.id} has no deploy.started/deploy.rollback`);
    if (FINAL.has(d.state) && !types.has(`deploy.${d.state}`)) missingDepEvents.push(`${d.id} is ${d.state} without deploy.${d.state}`);
  }
  add('every deployment has its start event and its final event', missingDepEvents, `${s.deployments.length * 2} events found`);

  // Instances: each state they reached has its event; health matches the last health event.
  const instEvents = new Map<string, string[]>();
  for (const e of s.events) if (e.instanceId) (instEvents.get(e.instanceId) ?? instEvents.set(e.instanceId, []).get(e.instanceId)!).push(e.type);
  const instProblems: string[] = [];
  const needs: Record<string, string[]> = { exited: ['instance.exited'], failed: ['instance.failed', 'instance.exited'], stopped: ['instance.stopped'] };
  for (const i of s.instances) {
    const types = instEvents.get(i.id) ?? [];
    if (i.started && !types.includes('instance.started')) instProblems.push(`${i.id} started without instance.started`);
    const want = needs[i.observed];
    if (want && !want.some((t) => types.includes(t))) instProblems.push(`${i.id} is ${i.observed} without ${want.join(' or ')}`);
    if (i.health === 'healthy' || i.health === 'unhealthy') {
      const last = types.filter((t) => t === 'instance.healthy' || t === 'instance.unhealthy').at(-1);
      if (last !== `instance.${i.health}`) instProblems.push(`${i.id} is ${i.health}, its last health event is ${last ?? 'none'}`);
    }
  }
  add('every instance state and health change has its event', instProblems, `${s.instances.length} instances`);

  // Scale and exec answers have their events.
  const counted: string[] = [];
  for (const app of s.apps) {
    const scaled = eventsOf((e) => e.appId === app.id && e.type === 'app.scaled').length;
    const execs = eventsOf((e) => e.appId === app.id && e.type === 'instance.exec').length;
    if (scaled < (s.seen.scaled.get(app.name) ?? 0)) counted.push(`${app.name}: ${s.seen.scaled.get(app.name)} scales changed something, ${scaled} app.scaled events`);
    if (execs < (s.seen.execs.get(app.name) ?? 0)) counted.push(`${app.name}: ${s.seen.execs.get(app.name)} execs ran, ${execs} instance.exec events`);
  }
  const scales = [...s.seen.scaled.values()].reduce((a, b) => a + b, 0);
  const execs = [...s.seen.execs.values()].reduce((a, b) => a + b, 0);
  add('scales and execs that were answered have their events', counted, `${scales} scales, ${execs} execs`);

  // Events: the API lists exactly the database's, in order; the follower missed none.
  const eventProblems: string[] = [];
  const followProblems: string[] = [];
  for (const app of s.apps) {
    const ids = eventsOf((e) => e.appId === app.id).map((e) => e.id);
    const listed = s.apiEvents.get(app.name) ?? [];
    if (listed.join(',') !== ids.join(',')) eventProblems.push(`${app.name}: the API lists ${listed.length} events, the database has ${ids.length}${firstDifference(ids, listed)}`);
    const followed = new Set(s.followed.get(app.name) ?? []);
    const missed = ids.filter((id) => !followed.has(id));
    if (missed.length) followProblems.push(`${app.name}: ${missed.length} of ${ids.length} never seen by the follower (ids ${missed.slice(0, 8).join(', ')})`);
  }
  add('events: the API lists every event of each app, in id order', eventProblems, `${s.events.length} events`);
  add('events: a client following with `after` saw every event (no gap)', followProblems, 'none missed');
  const holes = idHoles(s.events.map((e) => e.id));
  results.push({
    name: 'event ids: holes in the sequence (rolled-back transactions, sequence values lost in a database crash)',
    ok: true,
    info: true,
    detail: `${holes.count} holes (${holes.ids} ids) over ${s.databaseRestarts} database restarts`,
  });

  // Docker against Pier: the running containers are the running instances, nothing else is there.
  const dockerProblems: string[] = [];
  const managed = s.containers.filter((c) => c.labels['dev.pier.managed'] === 'true');
  const runningContainers = new Set(managed.filter((c) => c.running).map((c) => c.labels['dev.pier.instance'] ?? c.name));
  const runningRows = new Set(s.instances.filter((i) => i.observed === 'running').map((i) => i.id));
  const apiRunning = new Set([...s.apiRunning.values()].flat());
  for (const id of runningContainers) if (!runningRows.has(id)) dockerProblems.push(`container of ${id} runs, Pier says it does not`);
  for (const id of runningRows) if (!runningContainers.has(id)) dockerProblems.push(`Pier says ${id} runs, its container does not`);
  for (const id of runningRows) if (!apiRunning.has(id)) dockerProblems.push(`${id} runs in the database, the API does not list it as running`);
  for (const id of apiRunning) if (!runningRows.has(id)) dockerProblems.push(`the API lists ${id} as running, the database does not`);
  add('docker ps: containers running with Pier labels = instances Pier says run', dockerProblems, `${runningContainers.size} running`);

  const rows = new Map(s.instances.map((i) => [i.id, i]));
  const orphans: string[] = [];
  for (const c of s.containers) {
    const id = c.labels['dev.pier.instance'];
    if (c.labels['dev.pier.managed'] !== 'true' || id === undefined) orphans.push(`${c.name} has no Pier labels`);
    else if (!rows.has(id)) orphans.push(`${c.name} (${c.running ? 'running' : 'stopped'}) has no instance`);
    else if (c.running && rows.get(id)!.desired !== 'running') orphans.push(`${c.name} runs but its instance should be stopped`);
  }
  add('no orphan containers', orphans, `${s.containers.length} containers, each an instance`);

  // Each app runs what it should: the current release, as many as desired per process.
  const countProblems: string[] = [];
  for (const app of s.apps) {
    const want = s.desired.get(app.name) ?? {};
    const mine = s.instances.filter((i) => i.appId === app.id && i.observed === 'running' && i.desired === 'running');
    for (const [proc, n] of Object.entries(want)) {
      const have = mine.filter((i) => i.process === proc && i.releaseId === app.currentReleaseId).length;
      if (have !== n) countProblems.push(`${app.name} ${proc}: ${have} of ${n} running`);
    }
    const stray = mine.filter((i) => i.releaseId !== app.currentReleaseId || !(i.process in want));
    if (stray.length) countProblems.push(`${app.name}: ${stray.length} running outside the current release`);
  }
  add('each app runs its current release with the desired counts', countProblems, 'all converged');
  return results;
}

function firstDifference(a: number[], b: number[]): string {
  const i = a.findIndex((v, k) => b[k] !== v);
  const at = i === -1 ? a.length : i;
  return ` (first difference at position ${at}: ${a[at] ?? 'end'} vs ${b[at] ?? 'end'})`;
}

/** Holes in an ascending id sequence: how many, and how many ids they skip. */
export function idHoles(ids: number[]): { count: number; ids: number } {
  let count = 0;
  let skipped = 0;
  for (let i = 1; i < ids.length; i++) {
    const gap = (ids[i] as number) - (ids[i - 1] as number) - 1;
    if (gap > 0) {
      count++;
      skipped += gap;
    }
  }
  return { count, ids: skipped };
}
