// Gathers the end-of-run snapshot for soak-state-check.ts: the database's rows (read directly from
// the soak's own PostgreSQL), what the API lists (releases, events, instances, desired counts)
// and every container on the soak's engine (`docker ps -a` + inspect). `settle` waits, bounded,
// until Pier has converged (no rollout running, the containers are the running instances, counts
// as desired) before the final snapshot is checked.
import postgres from 'postgres';
import type { EventView, InstanceView, ReleaseView } from '../api/views.js';
import type { SoakClient } from './soak-client.js';
import type { SoakDockerd } from './soak-dockerd.js';
import type { Seen } from './soak-ops.js';
import { sleepUnless } from './soak-operators.js';
import { checkState, type CheckResult, type StateSnapshot } from './soak-state-check.js';

export interface SnapshotSources {
  databaseUrl: string;
  client: SoakClient;
  dockerd: SoakDockerd;
  seen: Seen;
  followed: Map<string, number[]>;
  databaseRestarts: number;
}

/** Checks that show convergence; the rest only mean something once these pass. */
const CONVERGENCE = [/^every deployment ended/, /^docker ps/, /^no orphan containers/, /^each app runs/];

/** Re-checks every 3 s until the convergence checks pass or `timeoutMs` runs out; returns the last results. */
export async function settleAndCheck(sources: SnapshotSources, timeoutMs: number, log: (line: string) => void): Promise<{ results: CheckResult[]; settledMs: number | null }> {
  const started = Date.now();
  let results: CheckResult[] = [];
  for (let round = 0; round < 1000; round++) {
    try {
      results = checkState(await snapshot(sources));
    } catch (err) {
      results = [{ name: 'snapshot', ok: false, detail: (err as Error).message }];
    }
    const pending = results.filter((r) => !r.ok && (r.name === 'snapshot' || CONVERGENCE.some((re) => re.test(r.name))));
    if (pending.length === 0) return { results, settledMs: Date.now() - started };
    if (Date.now() - started > timeoutMs) break;
    if (round % 5 === 0) log(`settling: ${pending.map((r) => `${r.name.split(':')[0]} (${r.detail.slice(0, 120)})`).join('; ')}`);
    await sleepUnless(() => false, 3000);
  }
  return { results, settledMs: null };
}

export async function snapshot(src: SnapshotSources): Promise<StateSnapshot> {
  const sql = postgres(src.databaseUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    const apps = await sql<{ id: string; name: string; currentReleaseId: string | null }[]>`select id, name, current_release_id as "currentReleaseId" from apps order by name`;
    const releases = await sql<{ id: string; appId: string; version: number }[]>`select id, app_id as "appId", version from releases`;
    const deployments = await sql<{ id: string; appId: string; releaseId: string; state: string }[]>`select id, app_id as "appId", release_id as "releaseId", state from deployments`;
    const events = (
      await sql<{ id: string; appId: string | null; type: string; deploymentId: string | null; instanceId: string | null }[]>`
        select id, app_id as "appId", type, deployment_id as "deploymentId", instance_id as "instanceId" from events order by id`
    ).map((e) => ({ ...e, id: Number(e.id) }));
    const instances = await sql<StateSnapshot['instances']>`
      select id, app_id as "appId", release_id as "releaseId", process, desired_state as desired, observed_state as observed, health, started_at is not null as started
      from instances`;

    const apiReleases = new Map<string, number[]>();
    const apiEvents = new Map<string, number[]>();
    const apiRunning = new Map<string, string[]>();
    const desired = new Map<string, Record<string, number>>();
    for (const app of apps) {
      const name = encodeURIComponent(app.name);
      apiReleases.set(app.name, (await pages<ReleaseView>(src.client, `/v1/apps/${name}/releases`, 'releases')).map((r) => r.version));
      apiRunning.set(app.name, (await pages<InstanceView>(src.client, `/v1/apps/${name}/instances`, 'instances')).filter((i) => i.state === 'running').map((i) => i.id));
      apiEvents.set(app.name, await eventIds(src.client, name));
      const described = await src.client.http('GET', `/v1/apps/${name}/describe`);
      if (described.code !== null) throw new Error(`describe ${app.name}: ${described.code} ${described.message}`);
      const processes = (described.body as { processes: { process: string; desired: number }[] }).processes;
      desired.set(app.name, Object.fromEntries(processes.map((p) => [p.process, p.desired])));
    }
    return {
      apps,
      releases,
      deployments,
      events,
      instances,
      apiReleases,
      apiEvents,
      apiRunning,
      desired,
      followed: src.followed,
      containers: await containers(src.dockerd),
      seen: src.seen,
      databaseRestarts: src.databaseRestarts,
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** A list route read to its end with `cursor` (bounded: 100 pages). */
async function pages<T>(client: SoakClient, path: string, key: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const answer = await client.http('GET', `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (answer.code !== null) throw new Error(`GET ${path}: ${answer.code} ${answer.message}`);
    const body = answer.body as Record<string, unknown>;
    items.push(...((body[key] as T[]) ?? []));
    cursor = typeof body.next_cursor === 'string' ? body.next_cursor : null;
    if (cursor === null) break;
  }
  return items;
}

/** Every event id of an app, read from the start with `after` (bounded: 100 pages of 1000). */
async function eventIds(client: SoakClient, app: string): Promise<number[]> {
  const ids: number[] = [];
  for (let page = 0; page < 100; page++) {
    const answer = await client.http('GET', `/v1/apps/${app}/events?after=${ids.at(-1) ?? 0}&limit=1000`);
    if (answer.code !== null) throw new Error(`events of ${app}: ${answer.code} ${answer.message}`);
    const events = (answer.body as { events: EventView[] }).events;
    ids.push(...events.map((e) => e.id));
    if (events.length < 1000) break;
  }
  return ids;
}

async function containers(dockerd: SoakDockerd): Promise<StateSnapshot['containers']> {
  // A container removed between the listing and the inspect fails the inspect: list again (3 tries).
  for (let attempt = 0; ; attempt++) {
    const ids = (await dockerd.docker(['ps', '-aq', '--no-trunc'])).split('\n').filter(Boolean);
    if (ids.length === 0) return [];
    try {
      const inspected = JSON.parse(await dockerd.docker(['inspect', ...ids])) as {
        Id: string;
        Name: string;
        State: { Running: boolean };
        Config: { Labels: Record<string, string> | null };
      }[];
      return inspected.map((c) => ({ id: c.Id, name: c.Name.replace(/^\//, ''), running: c.State.Running, labels: c.Config.Labels ?? {} }));
    } catch (err) {
      if (attempt === 2) throw err;
    }
  }
}
