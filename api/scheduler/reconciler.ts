// One reconcile pass for one app, run by the server that holds the app's lock and lease: observe
// containers, settle the app's rollout, plan, and apply the actions idempotently. Work is always
// redone from current state, never from an event. Every write is fenced by the lease, and the
// pass checks its lock between steps: a server that lost the lock stops acting at once.
import type { Logger } from 'pino';
import { and, eq, inArray, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, instances, releases, volumes, type Instance, type Release } from '../../db/schema/index.js';
import type { VolumeAttacher } from '../volumes/volume-attacher.js';
import type { PrivateNetworks } from '../private/private-networks.js';
import type { Manifest } from '../manifest.js';
import { LABELS, type ContainerInfo, type NetworkSpec, type Runtime } from '../runtime/runtime.js';
import { checkLease, isLeaseLost, type AppLeases, type Lease } from './app-leases.js';
import { crashBackoff, crashLoopMessage, withExitsSeenNow } from './crash-backoff.js';
import { createInstanceActions, type ActionContext } from './instance-actions.js';
import { isLive, plan, type Action, type ActualInstance } from './plan.js';
import { settleDeployment } from './rollout.js';
import { isReady } from './instance-ready.js';
import { desiredCounts } from '../desired-counts.js';

export interface ReconcilerOptions {
  db: Db;
  runtime: Runtime;
  leases: AppLeases;
  log: Logger;
  nodeId: string;
  /** Labels every container; only containers with it are this installation's. */
  installationId: string;
  /** The network every instance joins; the edge and the checks reach instances at their address on it. */
  network: NetworkSpec;
  /** Called after anything that can change the app's routes. */
  onRoutesChanged: (appId: string) => void;
  /** Stopped containers kept per app for their logs; older ones are removed. */
  keepStopped?: number;
  /** Seconds a stopping container gets before it is killed (default 10). */
  stopTimeoutSeconds?: number;
  /** Told of each crash loop announced (instance.crash-loop), for /metrics. */
  onCrashLoop?: ((app: string, process: string, until: Date) => void) | undefined;
  /** Attaches volumes to the instances of processes that mount them. */
  volumes?: VolumeAttacher | undefined;
  /** The private networks instances join as well (api/private/). */
  privateNetworks?: PrivateNetworks | undefined;
  /** Decrypts a release's secrets for its containers (api/secret-service.ts). */
  secrets?: ((release: Release) => Promise<Record<string, string>>) | undefined;
}

export interface ReconcileResult {
  /** True when actions ran: look again soon, from fresh state. */
  changed: boolean;
  /** When a held-back start should be retried. */
  retryAt: Date | null;
}

export interface Reconciler {
  /** One pass; throws E_LEASE_LOST when the lock was lost midway, or the first action's failure. */
  reconcile(appId: string, lease: Lease): Promise<ReconcileResult>;
}

export const KEEP_STOPPED = 10;

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { db, runtime, leases } = options;
  const keepStopped = options.keepStopped ?? KEEP_STOPPED;
  const actions = createInstanceActions({ ...options, stopTimeoutSeconds: options.stopTimeoutSeconds });
  /** The backoff deadline last announced per app/process, so each is recorded once. */
  const announced = new Map<string, number>();

  return {
    async reconcile(appId, lease) {
      const log = options.log.child({ app: appId });
      const [app] = await db.select().from(apps).where(eq(apps.id, appId));
      // An app this database does not know belongs to no one here: never touch its containers.
      if (!app) return { changed: false, retryAt: null };
      const containers = await runtime.list({ [LABELS.installation]: options.installationId, [LABELS.app]: appId });
      checkLease(lease);
      const rows = await db.select().from(instances).where(eq(instances.appId, appId));
      const byInstance = new Map<string, ContainerInfo>();
      for (const c of containers) {
        const id = c.labels[LABELS.instance];
        if (id) byInstance.set(id, c);
      }
      const releaseCache = new Map<string, Promise<Release | null>>();
      const ctx: ActionContext = {
        app: { id: app.id, orgId: app.orgId, name: app.name, environment: app.environment },
        lease,
        log,
        release: (id) => {
          let p = releaseCache.get(id);
          if (!p) releaseCache.set(id, (p = loadRelease(id)));
          return p;
        },
      };
      if (await observe(rows, byInstance, ctx)) options.onRoutesChanged(appId);
      checkLease(lease);

      const now = new Date();
      let releaseId = app.currentReleaseId;
      const settled = await settleDeployment({ db, leases, lease, runtime, log, app, instances: rows, containers: byInstance, now });
      if (settled.revertedTo !== undefined) {
        releaseId = settled.revertedTo;
        options.onRoutesChanged(appId);
      }
      checkLease(lease);
      const release = releaseId ? await ctx.release(releaseId) : null;
      const manifest = release ? (release.manifest as Manifest) : null;
      const known = new Set(rows.map((r) => r.id));
      // Exits this pass is about to record count already: the plan must not start a replacement
      // that the backoff they cause would hold back.
      const backoff = release ? crashBackoff(withExitsSeenNow(rows.filter((r) => r.releaseId === release.id), byInstance, now), now) : {};
      await announceBackoff(ctx, backoff, now);
      const volumeSpecs = manifest?.volumes ?? [];
      // A shared (not per-instance) volume has one writer: its process runs one instance.
      const single = new Set(volumeSpecs.filter((v) => !v.per_instance).map((v) => v.process));
      const processes = manifest && release ? desiredCounts(app, manifest, release.version).map(({ process, count }) => ({ process, count: single.has(process) ? Math.min(count, 1) : count })) : [];
      const held = volumeSpecs.length ? await restoringProcesses(appId) : new Set<string>();
      const deploy = manifest?.deploy;
      const result = plan({
        releaseId,
        processes,
        strategy: { type: deploy?.strategy ?? 'rolling', maxSurge: deploy?.max_surge ?? 1, maxUnavailable: deploy?.max_unavailable ?? 0 },
        instances: rows.map((r) => toActual(r, byInstance.get(r.id), now)),
        orphans: containers.filter((c) => !known.has(c.labels[LABELS.instance] ?? '')).map((c) => c.id),
        backoffUntil: Object.fromEntries(Object.entries(backoff).map(([p, b]) => [p, b.until])),
        holdPrevious: settled.holdPrevious ?? false,
        stopFirst: new Set(volumeSpecs.map((v) => v.process)),
        held,
        now,
      });
      const drainMs = deploy?.drain ?? 5_000;

      // Each action touches its own instance, so they run side by side: stopping a container
      // can take its whole stop timeout, and a rollout should not wait for them one by one.
      const byId = new Map(rows.map((r) => [r.id, r]));
      const failures: unknown[] = [];
      await Promise.all(
        result.actions.map((action) =>
          apply(action, byId, release, drainMs, ctx).catch((err: unknown) => {
            failures.push(err);
            if (!isLeaseLost(err)) log.error({ err, action }, 'reconcile action failed');
          }),
        ),
      );
      if (result.actions.length > 0) options.onRoutesChanged(appId);
      const lost = failures.find(isLeaseLost);
      if (lost) throw lost;
      // A deleted app keeps nothing: once its containers stopped, they are all removed.
      await collectGarbage(appId, rows, byInstance, log, app.deletedAt ? 0 : keepStopped);
      // The scheduler retries a failed pass with backoff; what succeeded stays done.
      if (failures.length > 0) throw failures[0];
      // A rollout fails at its deadline even when no container event or check change comes then.
      // So does an instance without a check once it has run long enough to count ready.
      const deadline = settled.deadline && settled.deadline > now ? new Date(settled.deadline.getTime() + 1) : null;
      const retryAt = earliest([result.retryAt, deadline, settled.readyAt ?? null]);
      return { changed: result.actions.length > 0, retryAt };
    },
  };

  async function apply(action: Action, rows: Map<string, Instance>, release: Release | null, drainMs: number, ctx: ActionContext): Promise<void> {
    checkLease(ctx.lease);
    if (action.type === 'start') {
      if (release) await actions.start(action.process, release, ctx);
      return;
    }
    if (action.type === 'remove-orphan') {
      ctx.log.info({ container: action.containerId }, 'removing orphan container');
      return runtime.remove(action.containerId);
    }
    const row = rows.get(action.instanceId);
    if (!row) return;
    switch (action.type) {
      case 'exited':
        return actions.exited(row, ctx);
      case 'create':
        return actions.create(row, ctx);
      case 'drain':
        return actions.drain(row, action.reason, drainMs, ctx);
      case 'stop':
        return actions.stop(row, ctx);
    }
  }

  /** Brings the rows up to what the engine says before planning; true when an address changed. */
  async function observe(rows: Instance[], byInstance: Map<string, ContainerInfo>, ctx: ActionContext): Promise<boolean> {
    let addressed = false;
    for (const row of rows) {
      const c = byInstance.get(row.id);
      if (c && row.containerId === null) {
        if (c.state === 'created') {
          // Made but never started (a start cut short between create and start): make it anew.
          await runtime.remove(c.id);
          byInstance.delete(row.id);
        } else {
          await actions.bind(row, c, ctx, await ctx.release(row.releaseId));
        }
      } else if (row.desiredState === 'running' && c?.state === 'running' && row.observedState !== 'running') {
        await actions.observedRunning(row, c, ctx);
      } else if (row.desiredState === 'stopped' && (row.observedState === 'starting' || row.observedState === 'running') && !isLive(c?.state ?? null)) {
        // Leaving, and its container ended (or was never made): it is simply stopped.
        await actions.stopped(row, ctx);
      }
      const live = byInstance.get(row.id);
      if (row.desiredState === 'running' && live?.state === 'running' && row.containerId === live.id && row.address !== live.networks[options.network.name]) {
        // Off the network (started before Pier had one, or taken off it) or at another address.
        addressed = (await actions.observedAddress(row, live, ctx)) || addressed;
      }
    }
    return addressed;
  }

  async function announceBackoff(ctx: ActionContext, backoff: ReturnType<typeof crashBackoff>, now: Date): Promise<void> {
    for (const [process, b] of Object.entries(backoff)) {
      const key = `${ctx.app.id}/${process}`;
      if (b.until <= now || announced.get(key) === b.until.getTime()) continue;
      const message = crashLoopMessage(process, b.exits, b.until, now);
      await leases.fenced(ctx.lease, (t) =>
        t.record({ orgId: ctx.app.orgId, appId: ctx.app.id, type: 'instance.crash-loop', reason: 'crash-loop', message, data: { process, exits: b.exits, until: b.until, lastExit: b.lastExit } }),
      );
      announced.set(key, b.until.getTime());
      options.onCrashLoop?.(ctx.app.name, process, b.until);
      ctx.log.warn({ process, exits: b.exits }, 'crash loop');
    }
  }

  /** Processes with a volume being restored in place or moved: none of their instances may start now. */
  async function restoringProcesses(appId: string): Promise<Set<string>> {
    const rows = await db
      .select({ process: volumes.process })
      .from(volumes)
      .where(and(eq(volumes.appId, appId), inArray(volumes.state, ['restoring', 'moving']), isNull(volumes.deletedAt)));
    return new Set(rows.map((r) => r.process).filter((p): p is string => p !== null));
  }

  async function loadRelease(id: string): Promise<Release | null> {
    const [row] = await db.select().from(releases).where(eq(releases.id, id));
    return row ?? null;
  }

  /** Keeps the newest stopped containers (their logs explain failures); removes older ones. */
  async function collectGarbage(appId: string, rows: Instance[], byInstance: Map<string, ContainerInfo>, log: Logger, keep: number): Promise<void> {
    const stopped = rows
      .filter((r) => r.desiredState === 'stopped' && byInstance.get(r.id) && byInstance.get(r.id)?.state !== 'running')
      .sort((a, b) => (b.stoppedAt?.getTime() ?? 0) - (a.stoppedAt?.getTime() ?? 0));
    for (const row of stopped.slice(keep)) {
      const c = byInstance.get(row.id);
      if (c) await runtime.remove(c.id).catch((err) => log.warn({ err, app: appId }, 'container removal failed'));
    }
  }
}

function toActual(row: Instance, container: ContainerInfo | undefined, now: Date): ActualInstance {
  return {
    id: row.id,
    releaseId: row.releaseId,
    process: row.process,
    desired: row.desiredState,
    container: container?.state ?? null,
    pending: !container && row.containerId === null && row.desiredState === 'running' && row.observedState === 'starting',
    ready: isReady(row, container, now),
    drainUntil: row.drainUntil,
    createdAt: row.createdAt,
  };
}

function earliest(dates: (Date | null)[]): Date | null {
  return dates.filter((d): d is Date => d !== null).sort((a, b) => a.getTime() - b.getTime())[0] ?? null;
}
