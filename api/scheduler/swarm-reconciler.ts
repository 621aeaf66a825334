// One reconcile pass of an app on a Docker Swarm (`pier server --runtime swarm`), under the app's
// lock and lease like the single-engine reconciler it stands in for.
//
// Who owns what: Swarm owns tasks — where each runs, starting it, restarting one that exits,
// moving it off a node that is down or drained. Pier owns releases, rollouts, checks, events and
// the edge. So this pass never starts or stops a container: it reads each service's tasks into
// instance rows (one row per task, reached at its node's address and host-mode published ports),
// settles the running deployment from those rows, and asks Swarm only for services and replica
// counts (swarm-plan.ts). A task that fails Pier's checks too often is stopped through its node's
// engine by the health monitor; Swarm starts its replacement.
import type { Logger } from 'pino';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances, nodes, releases, type Instance, type Release } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import { desiredCounts } from '../desired-counts.js';
import { PierError } from '../pier-error.js';
import { LABELS, type ContainerInfo, type Runtime } from '../runtime/runtime.js';
import { taskPortsAt, type SwarmNodeInfo, type SwarmServices, type SwarmTask } from '../runtime/swarm-services.js';
import { checkLease, type AppLeases, type Lease } from './app-leases.js';
import type { ReconcileResult, Reconciler } from './reconciler.js';
import { settleDeployment } from './rollout.js';
import { isReady } from './instance-ready.js';
import { GENERATION_LABEL, swarmGroupSpec } from './swarm-group.js';
import { planSwarm, releaseReady, type PlanInstance, type PlanService } from './swarm-plan.js';
import { swarmInitialHealth, type SwarmPrivate } from './swarm-private.js';
import { sharedVolumeProcesses, volumeProcesses, type SwarmVolumes } from './swarm-volumes.js';

export interface SwarmReconcilerOptions {
  db: Db;
  services: SwarmServices;
  /** The swarm runtime: inspect and logs of a failed task's container, through its node. */
  runtime: Runtime;
  leases: AppLeases;
  log: Logger;
  installationId: string;
  onRoutesChanged: (appId: string) => void;
  /**
   * Swarm replaces and moves tasks on its own, with no event Pier hears on every node: an app
   * with services is looked at again after this long (default 1 s).
   */
  pollMs?: number;
  /** Seconds a stopping task gets before Swarm kills it (default 10). */
  stopGraceSeconds?: number;
  /**
   * Decrypts a release's secrets (api/secret-service.ts): they go into its services' env, as on
   * one engine; without it, a release with secrets gets no service (E_SECRETS_UNAVAILABLE).
   */
  secrets?: ((release: Release) => Promise<Record<string, string>>) | undefined;
  /** Private networks: a new service joins its environment's overlay with its names (swarm-private.ts). */
  private?: SwarmPrivate | undefined;
  /** Volumes: made on a node through its agent, the group pinned there (swarm-volumes.ts). */
  volumes?: SwarmVolumes | undefined;
}

/**
 * What a swarm cannot run: a process with per-instance volumes and several instances spread one
 * per node. A group's volumes are on one node and its tasks are pinned there (swarm-volumes.ts), so
 * `spread = "node"` would leave all but one task pending. Other volumes run on the node that holds
 * them; private networks on an overlay.
 */
export function refuseOnSwarm(manifest: Manifest): PierError | null {
  for (const volume of manifest.volumes ?? []) {
    const process = manifest.processes[volume.process];
    const count = process?.count ?? 1;
    if (!volume.per_instance || count <= 1 || process?.placement?.spread !== 'node') continue;
    return new PierError('E_SWARM_VOLUMES', `${manifest.app} runs ${count} instances of process ${volume.process} one per node (spread = "node") with a per-instance volume ${volume.name}, and on a swarm a process's volumes and tasks are all on one node`, {
      status: 422,
      hint: 'drop spread = "node" for that process (its tasks then share the node that holds its volumes), or split it into processes of one instance each; see docs/several-machines.md, "Volumes on a swarm"',
    });
  }
  return null;
}

const TERMINAL = new Set(['complete', 'failed', 'shutdown', 'rejected', 'remove', 'orphaned']);

/** One row per task: the task's id names it, so every server maps a task to the same row. */
export function swarmInstanceId(app: string, process: string, taskId: string): string {
  return `${app}-${process}-${taskId.slice(0, 10)}`;
}

export function createSwarmReconciler(options: SwarmReconcilerOptions): Reconciler {
  const { db, services, leases } = options;
  const pollMs = options.pollMs ?? 1_000;
  const knownNodes = new Set<string>();

  return {
    async reconcile(appId, lease): Promise<ReconcileResult> {
      const log = options.log.child({ app: appId });
      const [app] = await db.select().from(apps).where(eq(apps.id, appId));
      if (!app) return { changed: false, retryAt: null };
      const ctx = { app, lease, log };
      const groups = await services.listServices({ [LABELS.installation]: options.installationId, [LABELS.app]: appId });
      const tasks = new Map<string, SwarmTask[]>();
      for (const g of groups) tasks.set(g.name, await services.tasks(g.name));
      const swarmNodes = await services.nodes();
      await rememberNodes(swarmNodes);
      checkLease(lease);

      let rows = await db.select().from(instances).where(eq(instances.appId, appId));
      /** Instance → its task's service: a scale down's generations are told apart by it. */
      const serviceOf = new Map<string, string>();
      /** Instance → its task's slot (1…N): which per-instance volume it mounts. */
      const slotOf = new Map<string, number>();
      for (const g of groups) {
        const process = g.labels[LABELS.process];
        if (!process) continue;
        for (const task of tasks.get(g.name) ?? []) {
          serviceOf.set(swarmInstanceId(app.name, process, task.id), g.name);
          slotOf.set(swarmInstanceId(app.name, process, task.id), task.slot);
        }
      }
      const observed = await observe(ctx, groups, tasks, swarmNodes, rows);
      if (observed) {
        options.onRoutesChanged(appId);
        rows = await db.select().from(instances).where(eq(instances.appId, appId));
      }
      checkLease(lease);

      // The deployment is settled from the rows: a row that runs has a running task.
      const containers = new Map<string, ContainerInfo>();
      for (const r of rows) if (r.desiredState === 'running' && r.observedState === 'running') containers.set(r.id, runningInfo(r));
      const now = new Date();
      const settled = await settleDeployment({ db, leases, lease, runtime: options.runtime, log, app, instances: rows, containers, now });
      let releaseId = app.currentReleaseId;
      if (settled.revertedTo !== undefined) {
        releaseId = settled.revertedTo;
        options.onRoutesChanged(appId);
      }
      checkLease(lease);
      const release = releaseId && !app.deletedAt ? await loadRelease(releaseId) : null;
      const oneWriter = release ? volumeProcesses(release.manifest as Manifest) : new Set<string>();
      // A volume being restored or moved holds its process at zero; one writer is one task.
      const held = oneWriter.size > 0 && options.volumes ? await options.volumes.held(appId) : new Set<string>();
      if (oneWriter.size > 0) await options.volumes?.attachRunning(app, rows, async (id) => ((await loadRelease(id))?.manifest as Manifest | undefined) ?? null, lease, slotOf);
      // A shared volume has one writer: one task. Per-instance volumes: a volume per slot.
      const shared = release ? sharedVolumeProcesses(release.manifest as Manifest) : new Set<string>();
      const counts = release
        ? desiredCounts(app, release.manifest as Manifest, release.version).map(({ process, count }) => ({ process, count: held.has(process) ? 0 : shared.has(process) ? Math.min(count, 1) : count }))
        : [];
      const planRows: PlanInstance[] = rows.map((r) => ({
        id: r.id,
        releaseId: r.releaseId,
        process: r.process,
        desired: r.desiredState,
        ready: isReady(r, containers.get(r.id), now),
        drainUntil: r.drainUntil,
        service: serviceOf.get(r.id),
      }));
      const rolling = settled.deadline !== undefined || settled.holdPrevious === true;
      const keepPrevious = rolling && release !== null && (settled.holdPrevious === true || !releaseReady(release.id, counts, planRows));
      const result = planSwarm({
        release: release ? { id: release.id, counts } : null,
        services: groups.map((g): PlanService => ({ name: g.name, releaseId: g.labels[LABELS.release] ?? '', process: g.labels[LABELS.process] ?? '', replicas: g.replicas, generation: Number(g.labels[GENERATION_LABEL] ?? 0) || 0 })),
        instances: planRows,
        keepPrevious,
        oneWriter,
        now,
      });

      const drainMs = (release?.manifest as Manifest | undefined)?.deploy?.drain ?? 5_000;
      for (const action of result.actions) {
        checkLease(lease);
        if (action.type === 'ensure' && release) {
          // The values go only into the spec sent to the manager: never into a log line or event.
          const secrets = Object.keys(release.secrets ?? {}).length ? await secretsOf(release) : undefined;
          const volumes = oneWriter.has(action.process) ? await groupVolumes(app, release.manifest as Manifest, action.process, swarmNodes, lease, action.replicas) : undefined;
          let spec = swarmGroupSpec({ app, release, process: action.process, installationId: options.installationId, replicas: action.replicas, stopGraceSeconds: options.stopGraceSeconds, generation: action.generation, secrets, volumes });
          if (options.private) spec = await options.private.withPrivate(spec, app, release.manifest as Manifest, action.process);
          const made = await services.ensureService(spec);
          log.info({ service: spec.name, replicas: action.replicas, generation: action.generation, created: made.created }, made.created ? 'swarm service created' : 'swarm service scaled');
        } else if (action.type === 'drain') {
          await drain(ctx, action.instanceId, action.reason, drainMs);
        } else if (action.type === 'remove') {
          // Scaled to zero first: its tasks stop with their grace period, then the service goes.
          await services.scaleService(action.service, 0).catch((err: { code?: string }) => {
            if (err.code !== 'E_SERVICE_NOT_FOUND') throw err;
          });
          // One writer: the service goes only once its tasks have ended, since the next one of the
          // process starts as soon as it is gone (a removed service's containers stop on their own time).
          const process = groups.find((g) => g.name === action.service)?.labels[LABELS.process];
          if (process && oneWriter.has(process) && (tasks.get(action.service) ?? []).some((task) => !TERMINAL.has(task.state))) {
            log.info({ service: action.service }, 'swarm service scaled to zero; removed once its tasks have stopped');
            continue;
          }
          await services.removeService(action.service);
          log.info({ service: action.service }, 'swarm service removed');
        }
      }
      if (result.actions.some((a) => a.type === 'drain')) options.onRoutesChanged(appId);
      // Swarm acts without telling: look again soon while the app has services.
      const poll = groups.length > 0 || result.actions.length > 0 ? new Date(Date.now() + pollMs) : null;
      const deadline = settled.deadline && settled.deadline > now ? new Date(settled.deadline.getTime() + 1) : null;
      const retryAt = [poll, deadline, settled.readyAt ?? null, result.retryAt].filter((d): d is Date => d !== null).sort((a, b) => a.getTime() - b.getTime())[0] ?? null;
      return { changed: result.actions.length > 0, retryAt };
    },
  };

  /** Brings the rows up to the tasks: a row for each running task, and an end for each that ended. True when routes may have changed. */
  async function observe(
    ctx: { app: typeof apps.$inferSelect; lease: Lease; log: Logger },
    groups: { name: string; labels: Record<string, string> }[],
    tasks: Map<string, SwarmTask[]>,
    swarmNodes: SwarmNodeInfo[],
    rows: Instance[],
  ): Promise<boolean> {
    const { app, lease } = ctx;
    const byId = new Map(rows.map((r) => [r.id, r]));
    const seen = new Set<string>();
    const nodeOf = new Map(swarmNodes.map((n) => [n.id, n]));
    let changed = false;
    for (const g of groups) {
      const releaseId = g.labels[LABELS.release];
      const process = g.labels[LABELS.process];
      if (!releaseId || !process) continue;
      const release = await loadRelease(releaseId);
      if (!release) continue;
      for (const task of tasks.get(g.name) ?? []) {
        const id = swarmInstanceId(app.name, process, task.id);
        seen.add(id);
        const row = byId.get(id);
        const node = task.nodeId ? nodeOf.get(task.nodeId) : undefined;
        const wanted = swarmGroupSpecPorts(release, process);
        const serving = task.state === 'running' && task.desiredState === 'running' && node !== undefined && wanted.every((p) => task.ports[p] !== undefined);
        if (!row && serving) {
          const ports = taskPortsAt(task, node.address);
          const now = new Date();
          await leases.fenced(lease, async (t) => {
            const [made] = await t.tx
              .insert(instances)
              .values({
                id,
                appId: app.id,
                releaseId,
                process,
                nodeId: nodeRowId(node.id),
                containerId: task.containerId,
                observedState: 'running',
                health: swarmInitialHealth(release.manifest as Manifest, process),
                address: node.address,
                ports,
                startedAt: task.updatedAt ?? now,
              })
              .onConflictDoNothing()
              .returning();
            if (!made) return;
            await t.record({
              orgId: app.orgId,
              appId: app.id,
              instanceId: id,
              type: 'instance.started',
              reason: 'scheduled',
              message: `${id} started on node ${node.hostname} (${node.address}) (release v${release.version}, process ${process}, task ${task.id})`,
              data: { releaseId, version: release.version, process, containerId: task.containerId, address: node.address, ports, taskId: task.id, slot: task.slot, node: node.address },
            });
          });
          changed = true;
        } else if (row && serving && row.observedState === 'running' && row.desiredState === 'running' && stale(row, node.address, taskPortsAt(task, node.address), task.containerId)) {
          // A row written with another port (or address) than its task now has: the checks and
          // the edge follow the task without waiting for it to be replaced.
          const ports = taskPortsAt(task, node.address);
          await leases.fenced(lease, (t) => t.tx.update(instances).set({ address: node.address, ports, nodeId: nodeRowId(node.id), containerId: task.containerId ?? row.containerId, updatedAt: new Date() }).where(eq(instances.id, row.id)));
          ctx.log.info({ instance: row.id, address: node.address, ports, was: { address: row.address, ports: row.ports } }, 'instance ports refreshed');
          changed = true;
        } else if (row && !serving && (row.observedState === 'running' || row.observedState === 'starting') && (TERMINAL.has(task.state) || task.desiredState !== 'running')) {
          await ended(ctx, row, task, task.state === 'failed' || task.state === 'rejected');
          changed = true;
        }
      }
    }
    // Rows whose task Swarm no longer lists (its service removed, or history pruned) ended too.
    for (const row of rows) {
      if (seen.has(row.id) || (row.observedState !== 'running' && row.observedState !== 'starting')) continue;
      await ended(ctx, row, null, false);
      changed = true;
    }
    return changed;
  }

  async function ended(ctx: { app: typeof apps.$inferSelect; lease: Lease; log: Logger }, row: Instance, task: SwarmTask | null, failed: boolean): Promise<void> {
    const now = new Date();
    const where = task?.error ? `: ${task.error}` : '';
    const message = failed
      ? `${row.id} exited${task?.exitCode !== null && task?.exitCode !== undefined ? ` with code ${task.exitCode}` : ''}${where}; Swarm starts a replacement`
      : `${row.id} stopped (${row.desiredState === 'stopped' ? (row.lastReason ?? 'stopped by Pier') : `task ${task?.state ?? 'gone'}${where}`})`;
    await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({
          desiredState: 'stopped',
          observedState: failed ? 'exited' : 'stopped',
          lastExitCode: task?.exitCode ?? null,
          lastReason: failed ? message : (row.lastReason ?? message),
          stoppedAt: task?.updatedAt ?? now,
          updatedAt: now,
        })
        .where(and(eq(instances.id, row.id), inArray(instances.observedState, ['starting', 'running'])))
        .returning();
      if (!updated) return;
      await t.record({
        orgId: ctx.app.orgId,
        appId: ctx.app.id,
        instanceId: row.id,
        type: failed ? 'instance.exited' : 'instance.stopped',
        reason: failed ? (task?.exitCode !== null && task?.exitCode !== undefined && task.exitCode > 128 ? 'killed' : 'exited') : 'task-ended',
        message,
        data: { exitCode: task?.exitCode ?? null, taskId: task?.id ?? null, taskState: task?.state ?? null, error: task?.error ?? null, releaseId: row.releaseId, process: row.process },
      });
    });
    ctx.log.info({ instance: row.id, task: task?.id, state: task?.state, failed }, 'swarm task ended');
  }

  async function drain(ctx: { app: typeof apps.$inferSelect; lease: Lease; log: Logger }, instanceId: string, reason: string, drainMs: number): Promise<void> {
    const now = new Date();
    const until = new Date(now.getTime() + drainMs);
    await leases.fenced(ctx.lease, (t) =>
      t.tx
        .update(instances)
        .set({ desiredState: 'stopped', drainUntil: until, lastReason: reason, updatedAt: now })
        .where(and(eq(instances.id, instanceId), eq(instances.desiredState, 'running'))),
    );
    ctx.log.info({ instance: instanceId, reason, drainMs, until: until.toISOString() }, 'instance draining');
  }

  /** Instances name their node through the nodes table: each swarm node gets a row. */
  async function rememberNodes(list: SwarmNodeInfo[]): Promise<void> {
    if (list.every((n) => knownNodes.has(n.id))) return;
    const dup = new Set(list.map((n) => n.hostname).filter((h, i, all) => all.indexOf(h) !== i));
    for (const n of list) {
      // Nodes on one machine share its host name: then the address tells them apart.
      const name = dup.has(n.hostname) || !n.hostname ? `${n.hostname || 'node'}@${n.address}` : n.hostname;
      const endpoint = `swarm://${n.id}`;
      await db
        .insert(nodes)
        .values({ id: nodeRowId(n.id), name, endpoint, publishAddress: n.address, labels: n.labels, state: n.state, lastSeenAt: new Date() })
        .onConflictDoUpdate({ target: nodes.id, set: { name, publishAddress: n.address, labels: n.labels, state: n.state, lastSeenAt: new Date() } });
      knownNodes.add(n.id);
    }
  }

  async function groupVolumes(app: typeof apps.$inferSelect, manifest: Manifest, process: string, swarmNodes: SwarmNodeInfo[], lease: Lease, replicas: number) {
    if (!options.volumes) {
      throw new PierError('E_NODE_AGENT_MISSING', `${app.name}'s process ${process} mounts volumes and this server has no node agents`, {
        status: 503,
        hint: 'run `pier agent` on the nodes and start pier server with --node-agent ADDRESS=URL and --node-agent-token-file FILE; see docs/several-machines.md',
      });
    }
    return options.volumes.prepare(app, manifest, process, swarmNodes, lease, replicas);
  }

  async function secretsOf(release: Release): Promise<Record<string, string>> {
    if (!options.secrets) {
      throw new PierError('E_SECRETS_UNAVAILABLE', `release v${release.version} has secrets and this server has no secret key`, { status: 500, hint: 'start pier server with its data folder (secrets.key)' });
    }
    return options.secrets(release);
  }

  async function loadRelease(id: string): Promise<Release | null> {
    const [row] = await db.select().from(releases).where(eq(releases.id, id));
    return row ?? null;
  }
}

/** True when the row's address, ports or container differ from its task's. */
function stale(row: Instance, address: string, ports: Record<string, number>, containerId: string | null): boolean {
  const had = (row.ports ?? {}) as Record<string, number>;
  const keys = new Set([...Object.keys(had), ...Object.keys(ports)]);
  return row.address !== address || [...keys].some((k) => had[k] !== ports[k]) || (containerId !== null && row.containerId !== containerId);
}

function nodeRowId(swarmNodeId: string): string {
  return `node_${swarmNodeId}`;
}

/** The container ports the group's service publishes: a task serves once each has its port. */
function swarmGroupSpecPorts(release: Pick<Release, 'manifest'>, process: string): number[] {
  const manifest = release.manifest as Manifest;
  const ports = manifest.endpoints.filter((e) => e.process === process).map((e) => e.target);
  const check = manifest.processes[process]?.check;
  if (check?.port !== undefined) ports.push(check.port);
  return ports;
}

function runningInfo(row: Instance): ContainerInfo {
  return {
    id: row.containerId ?? row.id,
    name: row.id,
    image: '',
    labels: {},
    state: 'running',
    exitCode: null,
    oomKilled: false,
    error: null,
    startedAt: row.startedAt,
    finishedAt: null,
    networks: {},
  };
}
