// One reconcile pass for one app: observe containers, settle the app's rollout, plan, and apply
// the actions idempotently. Work is always redone from current state, never from an event.
import type { Logger } from 'pino';
import { eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances, releases, type Instance, type Release } from '../../db/schema/index.js';
import type { EventLog } from '../event-log.js';
import { newInstanceId } from '../ids.js';
import type { Manifest } from '../manifest.js';
import { LABELS, type ContainerInfo, type Runtime } from '../runtime/runtime.js';
import { isPierError } from '../pier-error.js';
import { describeExit } from './exit-reason.js';
import { plan, type Action, type ActualInstance } from './plan.js';
import { settleDeployment } from './rollout.js';
import { crashBackoff, crashLoopMessage } from './crash-backoff.js';

export interface ReconcilerOptions {
  db: Db;
  runtime: Runtime;
  events: EventLog;
  log: Logger;
  nodeId: string;
  /** Labels every container; only containers with it are this installation's. */
  installationId: string;
  /** Address the node publishes container ports on, as the edge reaches it. */
  publishAddress: string;
  /** Called after anything that can change the route table. */
  onRoutesChanged: () => void;
  /** Stopped containers kept per app for their logs; older ones are removed. */
  keepStopped?: number;
}

export interface ReconcileResult {
  /** True when actions ran: look again soon, from fresh state. */
  changed: boolean;
  /** When a held-back start should be retried. */
  retryAt: Date | null;
}

export interface Reconciler {
  reconcile(appId: string): Promise<ReconcileResult>;
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { db, runtime, events, nodeId, publishAddress } = options;
  const keepStopped = options.keepStopped ?? 10;
  /** The backoff deadline last announced per app/process, so each is recorded once. */
  const announced = new Map<string, number>();

  return {
    async reconcile(appId) {
      const log = options.log.child({ app: appId });
      const [app] = await db.select().from(apps).where(eq(apps.id, appId));
      // An app this database does not know belongs to no one here: never touch its containers.
      if (!app) return { changed: false, retryAt: null };
      const containers = await runtime.list({ [LABELS.installation]: options.installationId, [LABELS.app]: appId });
      const rows = await db.select().from(instances).where(eq(instances.appId, appId));
      const byInstance = new Map<string, ContainerInfo>();
      for (const c of containers) {
        const id = c.labels[LABELS.instance];
        if (id) byInstance.set(id, c);
      }
      await observe(rows, byInstance);

      const now = new Date();
      let releaseId = app.currentReleaseId;
      const settled = await settleDeployment({ db, events, runtime, log, app, instances: rows, containers: byInstance, now });
      if (settled.revertedTo !== undefined) {
        releaseId = settled.revertedTo;
        options.onRoutesChanged();
      }
      const release = releaseId ? await loadRelease(releaseId) : null;
      const manifest = release ? (release.manifest as Manifest) : null;
      const known = new Set(rows.map((r) => r.id));
      const backoff = release ? crashBackoff(rows.filter((r) => r.releaseId === release.id), now) : {};
      await announceBackoff(app, backoff, now);
      const scale = app.scale;
      const processes = manifest ? Object.entries(manifest.processes).map(([process, p]) => ({ process, count: scale[process] ?? p.count })) : [];
      const deploy = manifest?.deploy;
      const result = plan({
        releaseId,
        processes,
        strategy: { type: deploy?.strategy ?? 'rolling', maxSurge: deploy?.max_surge ?? 1, maxUnavailable: deploy?.max_unavailable ?? 0 },
        instances: rows.map((r) => toActual(r, byInstance.get(r.id))),
        orphans: containers.filter((c) => !known.has(c.labels[LABELS.instance] ?? '')).map((c) => c.id),
        backoffUntil: Object.fromEntries(Object.entries(backoff).map(([p, b]) => [p, b.until])),
        now,
      });
      const drainMs = deploy?.drain ?? 5_000;

      // Each action touches its own instance, so they run side by side: stopping a container
      // can take its whole stop timeout, and a rollout should not wait for them one by one.
      const ctx: ApplyContext = { app: { id: app.id, orgId: app.orgId, name: app.name }, release, manifest, rows, byInstance, log, drainMs };
      await Promise.all(
        result.actions.map((action) => apply(action, ctx).catch((err) => log.error({ err, action }, 'reconcile action failed'))),
      );
      if (result.actions.length > 0) options.onRoutesChanged();
      await collectGarbage(appId, rows, byInstance);
      return { changed: result.actions.length > 0, retryAt: result.retryAt };
    },
  };

  async function announceBackoff(app: { id: string; orgId: string }, backoff: ReturnType<typeof crashBackoff>, now: Date) {
    for (const [process, b] of Object.entries(backoff)) {
      const key = `${app.id}/${process}`;
      if (b.until <= now || announced.get(key) === b.until.getTime()) continue;
      announced.set(key, b.until.getTime());
      const message = crashLoopMessage(process, b.exits, b.until, now);
      options.log.warn({ app: app.id, process, exits: b.exits }, 'crash loop');
      await events.record({ orgId: app.orgId, appId: app.id, type: 'instance.crash-loop', reason: 'crash-loop', message, data: { process, exits: b.exits, until: b.until } });
    }
  }

  /** Copies what Docker says into the observed columns. */
  async function observe(rows: Instance[], byInstance: Map<string, ContainerInfo>) {
    for (const row of rows) {
      const c = byInstance.get(row.id);
      if (row.desiredState === 'running' && c?.state === 'running' && row.observedState !== 'running') {
        row.observedState = 'running';
        await db.update(instances).set({ observedState: 'running', updatedAt: new Date() }).where(eq(instances.id, row.id));
      }
    }
  }

  async function loadRelease(id: string): Promise<Release | null> {
    const [row] = await db.select().from(releases).where(eq(releases.id, id));
    return row ?? null;
  }

  interface ApplyContext {
    app: { id: string; orgId: string; name: string };
    release: Release | null;
    manifest: Manifest | null;
    rows: Instance[];
    byInstance: Map<string, ContainerInfo>;
    log: Logger;
    drainMs: number;
  }

  async function apply(action: Action, ctx: ApplyContext): Promise<void> {
    switch (action.type) {
      case 'exited':
        return markExited(action.instanceId, ctx);
      case 'start':
        return start(action.process, ctx);
      case 'drain':
        return drain(action.instanceId, action.reason, ctx);
      case 'stop':
        return stop(action.instanceId, ctx);
      case 'remove-orphan':
        ctx.log.info({ container: action.containerId }, 'removing orphan container');
        return runtime.remove(action.containerId);
    }
  }

  async function markExited(instanceId: string, ctx: ApplyContext) {
    const row = ctx.rows.find((r) => r.id === instanceId);
    if (!row) return;
    const info = row.containerId ? await runtime.inspect(row.containerId) : null;
    const why = describeExit(instanceId, info);
    const lastLogs = info ? (await runtime.logs(info.id, 10).catch(() => [])).map((l) => l.line) : [];
    await db
      .update(instances)
      .set({
        desiredState: 'stopped',
        observedState: why.reason === 'start-failed' ? 'failed' : 'exited',
        lastExitCode: why.exitCode,
        lastOom: why.oom,
        lastReason: why.message,
        stoppedAt: info?.finishedAt ?? new Date(),
        updatedAt: new Date(),
      })
      .where(eq(instances.id, instanceId));
    ctx.log.warn({ instance: instanceId, reason: why.reason, exitCode: why.exitCode }, 'instance exited');
    await events.record({
      orgId: ctx.app.orgId,
      appId: ctx.app.id,
      instanceId,
      type: 'instance.exited',
      reason: why.reason,
      message: why.message,
      data: { exitCode: why.exitCode, oom: why.oom, releaseId: row.releaseId, process: row.process, lastLogs },
    });
  }

  async function start(process: string, ctx: ApplyContext) {
    const { app, release, manifest } = ctx;
    if (!release || !manifest) return;
    const spec = manifest.processes[process];
    if (!spec) return;
    const id = newInstanceId(app.name, process);
    const ports = manifest.endpoints.filter((e) => e.process === process).map((e) => e.target);
    if (spec.check?.port !== undefined) ports.push(spec.check.port);
    const targets = [...new Set(ports)];
    await db.insert(instances).values({
      id,
      appId: app.id,
      releaseId: release.id,
      process,
      nodeId,
      hostAddress: publishAddress,
      health: spec.check ? 'starting' : 'none',
    });
    const log = ctx.log.child({ instance: id });
    try {
      const containerId = await runtime.run({
        name: id,
        image: release.imageId,
        cmd: spec.cmd,
        env: { ...manifest.env, ...spec.env, PIER_APP: app.name, PIER_PROCESS: process, PIER_INSTANCE: id, PIER_RELEASE: String(release.version) },
        labels: {
          [LABELS.managed]: 'true',
          [LABELS.installation]: options.installationId,
          [LABELS.app]: app.id,
          [LABELS.release]: release.id,
          [LABELS.process]: process,
          [LABELS.instance]: id,
        },
        ports: targets.map((container) => ({ container, hostIp: publishAddress })),
      });
      const info = await runtime.inspect(containerId);
      const hostPorts: Record<string, number> = {};
      for (const p of info?.ports ?? []) hostPorts[String(p.container)] = p.hostPort;
      await db
        .update(instances)
        .set({ containerId, hostPorts, startedAt: info?.startedAt ?? new Date(), observedState: info?.state === 'running' ? 'running' : 'starting', updatedAt: new Date() })
        .where(eq(instances.id, id));
      log.info({ container: containerId, release: release.version }, 'instance started');
      await events.record({
        orgId: app.orgId,
        appId: app.id,
        instanceId: id,
        type: 'instance.started',
        reason: 'scheduled',
        message: `${id} started (release v${release.version}, process ${process})`,
        data: { releaseId: release.id, version: release.version, process, containerId, hostPorts },
      });
    } catch (err) {
      const message = isPierError(err) ? err.message : String(err);
      await db
        .update(instances)
        .set({ desiredState: 'stopped', observedState: 'failed', lastReason: `${id} failed to start: ${message}`, stoppedAt: new Date(), updatedAt: new Date() })
        .where(eq(instances.id, id));
      log.error({ err }, 'instance failed to start');
      await events.record({
        orgId: app.orgId,
        appId: app.id,
        instanceId: id,
        type: 'instance.failed',
        reason: 'start-failed',
        message: `${id} failed to start: ${message}`,
        data: { releaseId: release.id, process },
      });
    }
  }

  /** Leaves the route table now; the container is stopped by a later pass once drained. */
  async function drain(instanceId: string, reason: string, ctx: ApplyContext) {
    const drainUntil = new Date(Date.now() + ctx.drainMs);
    await db.update(instances).set({ desiredState: 'stopped', drainUntil, lastReason: reason, updatedAt: new Date() }).where(eq(instances.id, instanceId));
    ctx.log.info({ instance: instanceId, reason, drainMs: ctx.drainMs }, 'instance draining');
  }

  async function stop(instanceId: string, ctx: ApplyContext) {
    const row = ctx.rows.find((r) => r.id === instanceId);
    if (!row) return;
    if (row.containerId) await runtime.stop(row.containerId, 10);
    const reason = row.lastReason ?? 'stopped';
    await db.update(instances).set({ observedState: 'stopped', stoppedAt: new Date(), updatedAt: new Date() }).where(eq(instances.id, instanceId));
    ctx.log.info({ instance: instanceId, reason }, 'instance stopped');
    await events.record({
      orgId: ctx.app.orgId,
      appId: ctx.app.id,
      instanceId,
      type: 'instance.stopped',
      reason: reason.replace(/ /g, '-'),
      message: `${instanceId} stopped: ${reason}`,
      data: { releaseId: row.releaseId, process: row.process },
    });
  }

  /** Keeps the newest stopped containers (their logs explain failures); removes older ones. */
  async function collectGarbage(appId: string, rows: Instance[], byInstance: Map<string, ContainerInfo>) {
    const stopped = rows
      .filter((r) => r.desiredState === 'stopped' && byInstance.get(r.id) && byInstance.get(r.id)?.state !== 'running')
      .sort((a, b) => (b.stoppedAt?.getTime() ?? 0) - (a.stoppedAt?.getTime() ?? 0));
    for (const row of stopped.slice(keepStopped)) {
      const c = byInstance.get(row.id);
      if (c) await runtime.remove(c.id).catch((err) => options.log.warn({ err, app: appId }, 'container removal failed'));
    }
  }
}

function toActual(row: Instance, container: ContainerInfo | undefined): ActualInstance {
  return {
    id: row.id,
    releaseId: row.releaseId,
    process: row.process,
    desired: row.desiredState,
    // A row whose container was never created (start failed) has no container either way.
    container: container?.state ?? null,
    ready: container?.state === 'running' && (row.health === 'none' || row.health === 'healthy'),
    drainUntil: row.drainUntil,
    createdAt: row.createdAt,
  };
}
