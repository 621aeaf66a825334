// Volumes and snapshots as resources (`pier volumes …`, `pier snapshots …`): owns the volumes and
// snapshots tables beside the reconciler, which only attaches volumes. A snapshot of an attached
// volume follows its `consistency` (pause, hook, or none); the dir driver always pauses, since a
// copy is no point in time. Restore in place: the volume is marked restoring (the reconciler
// starts nothing on it), its instance is stopped, and only then the pre-restore snapshot and the
// swap happen: stop first, then snapshot (a paused container is unfrozen to take a SIGTERM and
// goes on writing). Operations on one volume run one at a time.
import { and, desc, eq, gt, inArray, isNotNull, isNull, or } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, instances, releases, snapshots, volumes, type App, type Snapshot, type SnapshotKind, type Volume } from '../../db/schema/index.js';
import { appNotFound, findApp, requireScope, type AuthContext } from '../auth.js';
import { environmentOf } from '../environment-names.js';
import { newId } from '../ids.js';
import type { Manifest } from '../manifest.js';
import { PierError } from '../pier-error.js';
import type { Runtime } from '../runtime/runtime.js';
import { isLive } from '../scheduler/plan.js';
import type { Transactions } from '../transactions.js';
import { dockerVolumeName } from './docker-volume-name.js';
import type { VolumeDriver } from './volume-driver.js';
import { createVolumeRoots, DEFAULT_ROOT, type VolumeRoots } from './volume-roots.js';
import { nodeRootAddress } from './agent-roots.js';

export interface VolumeServiceOptions {
  db: Db;
  transactions: Transactions;
  runtime: Runtime;
  /** The default root's driver: new volumes and imports go there. */
  driver: VolumeDriver;
  /** Every storage root (volumes and snapshots name theirs); default: the default root alone. */
  roots?: VolumeRoots | undefined;
  nodeId: string;
  log: Logger;
  /** Reconcile the app (after a restore: start its instance again). */
  enqueue: (appId: string) => void;
  /** How long a deleted volume's final snapshot is kept (and undelete possible); default 48 h. */
  deletedRetentionMs?: number;
  /**
   * Stops a volume's writer where stopping its container is not enough: on a swarm, Swarm would
   * restart it, so its service is scaled to zero (api/scheduler/swarm-volumes.ts). Default: the
   * container is stopped through the runtime.
   */
  stopWriter?: ((holder: { instanceId: string }) => Promise<void>) | undefined;
  /**
   * On a swarm: whether a task of the app's process still runs on its node, whatever the rows say
   * (a drained task's row reads stopped while Swarm is still stopping it).
   */
  writerLive?: ((group: { appId: string; process: string }) => Promise<boolean>) | undefined;
  /** On a swarm: scales the app's process to zero and waits until none of its tasks runs. */
  stopGroup?: ((group: { appId: string; process: string }) => Promise<void>) | undefined;
  /** Seconds an instance gets to stop before a restore in place kills it (default 10). */
  stopTimeoutSeconds?: number;
  /** The clock of snapshot times, expiries and purges (tests move it; default Date.now). */
  now?: () => number;
}

const STOP_WAIT_MS = 60_000;

export function createVolumeService(options: VolumeServiceOptions) {
  const { db, transactions, runtime, driver, log } = options;
  const roots = options.roots ?? createVolumeRoots(new Map([[DEFAULT_ROOT, driver]]));
  const retention = options.deletedRetentionMs ?? 48 * 3_600_000;
  const clock = options.now ?? Date.now;
  const busy = new Map<string, Promise<unknown>>();

  /** Runs `fn` after every earlier operation on the same volume. */
  function serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = busy.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    busy.set(key, next);
    void next.finally(() => {
      if (busy.get(key) === next) busy.delete(key);
    }).catch(() => undefined);
    return next;
  }

  async function appOf(auth: AuthContext, name: string, scope: 'read' | 'deploy'): Promise<App> {
    requireScope(auth, scope);
    return findApp(db, auth, name);
  }

  async function findVolume(app: App, name: string): Promise<Volume> {
    const [v] = await db.select().from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, name), isNull(volumes.deletedAt)));
    if (!v) throw new PierError('E_VOLUME_NOT_FOUND', `app ${app.name} has no volume ${name}`, { status: 404, hint: `pier volumes list --app ${app.name} lists them` });
    return v;
  }

  async function findSnapshot(app: App, id: string): Promise<Snapshot> {
    const [s] = await db.select().from(snapshots).where(and(eq(snapshots.appId, app.id), eq(snapshots.id, id)));
    if (!s) throw new PierError('E_SNAPSHOT_NOT_FOUND', `app ${app.name} has no snapshot ${id}`, { status: 404, hint: `pier snapshots list --app ${app.name} lists them` });
    return s;
  }

  /** The instance that holds the volume now: its container is live, or it should run and its start is under way (no container yet). */
  async function liveHolder(v: Volume): Promise<{ instanceId: string; containerId: string | null } | null> {
    if (!v.attachedInstanceId) return null;
    const [holder] = await db.select().from(instances).where(eq(instances.id, v.attachedInstanceId));
    if (!holder) return null;
    if (!holder.containerId) return holder.desiredState === 'running' ? { instanceId: holder.id, containerId: null } : null;
    // On a swarm the row follows the task (the reconciler observes it), and the API server may not
    // reach the task's engine: the row says whether it runs, and Swarm whether a task of the
    // process is still stopping (a drained row reads stopped before its task has ended: a delete
    // or a final snapshot then would race a writer that still writes).
    if (options.stopWriter) {
      const live = holder.observedState === 'running' || holder.observedState === 'starting' || (options.writerLive !== undefined && (await options.writerLive({ appId: holder.appId, process: holder.process })));
      return live ? { instanceId: holder.id, containerId: holder.containerId } : null;
    }
    const info = await runtime.inspect(holder.containerId);
    return info && isLive(info.state) ? { instanceId: holder.id, containerId: holder.containerId } : null;
  }

  /** The `[[volumes]]` entry of the app's current release that made this volume. */
  async function specOf(app: App, v: Volume) {
    if (!app.currentReleaseId || !v.spec) return undefined;
    const [release] = await db.select({ manifest: releases.manifest }).from(releases).where(eq(releases.id, app.currentReleaseId));
    return ((release?.manifest as Manifest | undefined)?.volumes ?? []).find((s) => s.name === v.spec);
  }

  /**
   * On a swarm, stops a writer no row names as the volume's holder yet (its task runs before the
   * pass that attaches it): the process that mounts the volume is scaled to zero. Says whether a
   * task of it was running. Elsewhere (or with no process known to mount it) it does nothing.
   */
  async function stopUnnamedWriter(app: App, v: Volume, beforeStop: () => void): Promise<boolean> {
    if (!options.writerLive || !options.stopGroup) return false;
    const process = v.process ?? (await specOf(app, v))?.process;
    if (!process) return false;
    if (!(await options.writerLive({ appId: app.id, process }))) return false;
    beforeStop();
    await options.stopGroup({ appId: app.id, process });
    return true;
  }

  /** Takes a snapshot and records it (the caller serialises on the volume). */
  async function take(app: App, v: Volume, kind: SnapshotKind, expiresAt: Date | null): Promise<Snapshot> {
    const id = newId('snap');
    const createdAt = new Date(clock());
    const at = roots.get(v.root);
    const found = await liveHolder(v);
    // A holder still starting has written nothing yet: as good as stopped.
    const holder = found?.containerId ? { instanceId: found.instanceId, containerId: found.containerId } : null;
    let consistency = 'stopped';
    if (holder) {
      const spec = await specOf(app, v);
      consistency = spec?.consistency ?? 'none';
      if (consistency === 'hook' && spec?.hook) {
        const result = await runtime.exec(holder.containerId, spec.hook, { timeoutMs: 60_000 });
        if (result.exitCode !== 0) {
          throw new PierError('E_SNAPSHOT_HOOK', `the snapshot hook ${JSON.stringify(spec.hook)} exited with ${result.exitCode}: ${(result.stderr || result.stdout).trim().slice(0, 500)}`, {
            status: 422,
            hint: 'fix the hook in [[volumes]], or set consistency = "none" for a crash-consistent snapshot',
          });
        }
      }
      if (at.kind === 'dir' && consistency === 'none') consistency = 'pause';
    }
    if (holder && consistency === 'pause') {
      await runtime.pause(holder.containerId);
      try {
        await at.snapshot(v.id, id);
      } finally {
        await runtime.unpause(holder.containerId);
      }
      consistency = 'paused';
    } else {
      await at.snapshot(v.id, id);
    }
    const hash = await at.treeHash({ snapshot: id });
    return transactions.run(async (t) => {
      const [row] = await t.tx
        .insert(snapshots)
        .values({ id, appId: app.id, volumeId: v.id, volumeName: v.name, kind, driver: at.kind, root: v.root, consistency, bytes: hash.bytes, files: hash.files, sha256: hash.sha256, createdAt, expiresAt })
        .returning();
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        type: 'snapshot.created',
        reason: kind,
        message: `snapshot ${id} of volume ${v.name} (${kind}, ${consistency}): ${hash.files} files, ${hash.bytes} bytes`,
        data: { snapshotId: id, volumeId: v.id, kind, consistency, bytes: hash.bytes, sha256: hash.sha256 },
      });
      return row as Snapshot;
    });
  }

  /** Stops the instance holding the volume and waits until its container has stopped. */
  async function stopHolder(holder: { containerId: string | null; instanceId?: string }): Promise<void> {
    if (options.stopWriter && holder.instanceId) return options.stopWriter({ instanceId: holder.instanceId });
    if (!holder.containerId) return;
    await runtime.stop(holder.containerId, options.stopTimeoutSeconds ?? 10);
    const until = Date.now() + STOP_WAIT_MS;
    for (;;) {
      const info = await runtime.inspect(holder.containerId);
      if (!info || !isLive(info.state)) return;
      if (Date.now() > until) throw new PierError('E_VOLUME_BUSY', `container ${holder.containerId} did not stop`, { status: 409, hint: 'try again; nothing was changed' });
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Deletes a volume nothing runs on (the caller checked, under serial): a final snapshot kept
   * until the purge, the Docker volume and the data removed, the row marked deleted. For a volume
   * of a deleted app (`reason` app-deleted) every snapshot of it expires at the purge too: with
   * the app gone, nothing else would ever remove them.
   */
  async function retire(app: App, volume: Volume, reason: 'deleted' | 'app-deleted'): Promise<{ volume: Volume; finalSnapshot: Snapshot }> {
    const now = new Date(clock());
    const purgeAfter = new Date(now.getTime() + retention);
    const final = await take(app, volume, 'final', purgeAfter);
    await runtime.removeVolume(dockerVolumeName(volume.id, volume.root));
    const [row] = await transactions.run(async (t) => {
      const updated = await t.tx.update(volumes).set({ state: 'deleted', deletedAt: now, purgeAfter, attachedInstanceId: null, updatedAt: now }).where(eq(volumes.id, volume.id)).returning();
      if (reason === 'app-deleted') {
        await t.tx.update(snapshots).set({ expiresAt: purgeAfter }).where(and(eq(snapshots.volumeId, volume.id), or(isNull(snapshots.expiresAt), gt(snapshots.expiresAt, purgeAfter))));
      }
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        type: 'volume.deleted',
        reason,
        message:
          reason === 'deleted'
            ? `volume ${volume.name} deleted; final snapshot ${final.id} kept until ${purgeAfter.toISOString()} (pier volumes undelete --app ${app.name} ${volume.name})`
            : `volume ${volume.name} of the deleted app ${app.name}: final snapshot ${final.id} kept until ${purgeAfter.toISOString()}, then it and the volume's other snapshots are removed`,
        data: { volumeId: volume.id, snapshotId: final.id, purgeAfter },
      });
      return updated;
    });
    // Deleted already (the row says so, the final snapshot holds the data): a removal that fails
    // now (a node's agent gone for a moment) is not the delete's failure; the keeper's purge
    // removes the data again before the row goes, and an undelete clears it first.
    await (async () => roots.get(volume.root).remove(volume.id))().catch((err: unknown) => log.warn({ err, volume: volume.id }, 'the deleted volume\'s data was not removed; the purge removes it'));
    log.info({ volume: volume.id, snapshot: final.id, reason }, 'volume deleted');
    return { volume: row as Volume, finalSnapshot: final };
  }

  /** Removes a snapshot's data and row, with its event (`snapshot.deleted` or `snapshot.expired`). */
  async function dropSnapshot(app: { id: string; orgId: string }, snap: Snapshot, type: 'snapshot.deleted' | 'snapshot.expired', why: string): Promise<void> {
    await roots.get(snap.root).removeSnapshot(snap.id);
    await transactions.run(async (t) => {
      await t.tx.delete(snapshots).where(eq(snapshots.id, snap.id));
      await t.record({ orgId: app.orgId, appId: app.id, type, reason: type === 'snapshot.deleted' ? 'deleted' : 'retention', message: `snapshot ${snap.id} of volume ${snap.volumeName} ${why}`, data: { snapshotId: snap.id, kind: snap.kind, bytes: snap.bytes } });
    });
  }

  async function setState(app: App, v: Volume, state: 'ready' | 'restoring', type: string, message: string, data: Record<string, unknown>): Promise<void> {
    await transactions.run(async (t) => {
      await t.tx.update(volumes).set({ state, updatedAt: new Date() }).where(eq(volumes.id, v.id));
      await t.record({ orgId: app.orgId, appId: app.id, type, reason: state, message, data });
    });
  }

  return {
    /**
     * With `deleted`: the deleted volumes of the app and of deleted apps of that name (or `app_…`
     * id), whose final snapshots are kept until their purge.
     */
    async list(auth: AuthContext, appName: string, deleted = false): Promise<Volume[]> {
      if (!deleted) {
        const app = await appOf(auth, appName, 'read');
        return db.select().from(volumes).where(and(eq(volumes.appId, app.id), isNull(volumes.deletedAt))).orderBy(volumes.name);
      }
      requireScope(auth, 'read');
      const named = await db
        .select({ id: apps.id })
        .from(apps)
        .where(and(eq(apps.orgId, auth.orgId), appName.startsWith('app_') ? eq(apps.id, appName) : and(eq(apps.environment, environmentOf(auth)), eq(apps.name, appName))));
      const ids = named.map((a) => a.id).filter((id) => auth.appId === null || auth.appId === id);
      if (ids.length === 0) throw appNotFound(appName);
      return db.select().from(volumes).where(and(inArray(volumes.appId, ids), isNotNull(volumes.deletedAt))).orderBy(volumes.name, desc(volumes.deletedAt));
    },

    async create(auth: AuthContext, appName: string, name: string, sizeLimitBytes: number | null, root: string = DEFAULT_ROOT): Promise<Volume> {
      const app = await appOf(auth, appName, 'deploy');
      // An unknown root is E_VOLUME_ROOT_UNKNOWN, naming the roots there are; a node's agent not
      // configured is E_NODE_AGENT_MISSING.
      const at = roots.get(root);
      const [existing] = await db.select().from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, name), isNull(volumes.deletedAt)));
      if (existing) throw new PierError('E_VOLUME_EXISTS', `app ${app.name} already has a volume ${name}`, { status: 409, hint: 'pick another name, or use the one there is' });
      const id = newId('vol');
      await at.create(id, { sizeLimitBytes });
      const node = nodeRootAddress(root);
      const where = root === DEFAULT_ROOT ? '' : node === null ? ` on root ${root}` : ` on node ${node}`;
      try {
        return await transactions.run(async (t) => {
          const [row] = await t.tx.insert(volumes).values({ id, appId: app.id, name, spec: name, nodeId: options.nodeId, driver: at.kind, root, sizeLimitBytes }).returning();
          await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.created', reason: 'created', message: `volume ${name} created${where} (${at.kind})`, data: { volumeId: id, name, root } });
          return row as Volume;
        });
      } catch (err) {
        // A second create of the name won the race: its data stays, this one's goes.
        await at.remove(id).catch((e: unknown) => options.log.warn({ err: e, volume: id }, 'could not remove the data of a volume that was not recorded'));
        throw err;
      }
    },

    async describe(auth: AuthContext, appName: string, name: string): Promise<{ volume: Volume; usedBytes: number | null; snapshots: Snapshot[] }> {
      const app = await appOf(auth, appName, 'read');
      const volume = await findVolume(app, name);
      // Where the data is (a node agent's root too); unknown rather than an error when it cannot be read.
      const used = await roots.get(volume.root).usage({ volume: volume.id }).catch(() => null);
      const snaps = await db.select().from(snapshots).where(eq(snapshots.volumeId, volume.id)).orderBy(desc(snapshots.createdAt));
      return { volume, usedBytes: used, snapshots: snaps };
    },

    /** Refused while an instance runs on it; keeps a final snapshot (taken with nothing writing) for the retention period. */
    async delete(auth: AuthContext, appName: string, name: string): Promise<{ volume: Volume; finalSnapshot: Snapshot }> {
      const app = await appOf(auth, appName, 'deploy');
      const volume = await findVolume(app, name);
      return serial(volume.id, async () => {
        const holder = await liveHolder(volume);
        if (holder) {
          throw new PierError('E_VOLUME_ATTACHED', `volume ${name} is attached to ${holder.instanceId}, which runs`, {
            status: 409,
            hint: `stop its instance first (pier scale ${volume.process ?? 'PROCESS'}=0 --app ${app.name}, or deploy without this [[volumes]] entry)`,
          });
        }
        return retire(app, volume, 'deleted');
      });
    },

    /** Brings the last deleted volume of that name back from its final snapshot. */
    async undelete(auth: AuthContext, appName: string, name: string): Promise<Volume> {
      const app = await appOf(auth, appName, 'deploy');
      const [taken] = await db.select().from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, name), isNull(volumes.deletedAt)));
      if (taken) throw new PierError('E_VOLUME_EXISTS', `app ${app.name} has a volume ${name} again`, { status: 409, hint: `delete it first, or restore the final snapshot into a new volume (pier volumes restore --app ${app.name} SNAPSHOT --name NEW)` });
      const [gone] = await db.select().from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, name), isNotNull(volumes.deletedAt))).orderBy(desc(volumes.deletedAt)).limit(1);
      const [final] = gone
        ? await db.select().from(snapshots).where(and(eq(snapshots.volumeId, gone.id), eq(snapshots.kind, 'final'))).orderBy(desc(snapshots.createdAt)).limit(1)
        : [];
      if (!gone || !final) throw new PierError('E_VOLUME_NOT_FOUND', `app ${app.name} has no deleted volume ${name} to bring back`, { status: 404, hint: `pier volumes list --app ${app.name} --deleted lists them` });
      return serial(gone.id, async () => {
        // What a failed removal at delete left is not the volume's data any more: the final snapshot is.
        await roots.get(gone.root).remove(gone.id);
        await roots.get(final.root).restore(final.id, gone.id, { sizeLimitBytes: gone.sizeLimitBytes });
        return transactions.run(async (t) => {
          const [row] = await t.tx.update(volumes).set({ state: 'ready', root: final.root, deletedAt: null, purgeAfter: null, updatedAt: new Date() }).where(eq(volumes.id, gone.id)).returning();
          await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.undeleted', reason: 'undeleted', message: `volume ${name} brought back from snapshot ${final.id}`, data: { volumeId: gone.id, snapshotId: final.id } });
          return row as Volume;
        });
      });
    },

    async snapshot(auth: AuthContext, appName: string, name: string): Promise<Snapshot> {
      const app = await appOf(auth, appName, 'deploy');
      const volume = await findVolume(app, name);
      return serial(volume.id, () => take(app, volume, 'manual', null));
    },

    async listSnapshots(auth: AuthContext, appName: string, volumeName?: string): Promise<Snapshot[]> {
      const app = await appOf(auth, appName, 'read');
      const where = volumeName ? and(eq(snapshots.appId, app.id), eq(snapshots.volumeName, volumeName)) : eq(snapshots.appId, app.id);
      return db.select().from(snapshots).where(where).orderBy(desc(snapshots.createdAt));
    },

    async describeSnapshot(auth: AuthContext, appName: string, id: string): Promise<Snapshot> {
      return findSnapshot(await appOf(auth, appName, 'read'), id);
    },

    async deleteSnapshot(auth: AuthContext, appName: string, id: string): Promise<Snapshot> {
      const app = await appOf(auth, appName, 'deploy');
      const snap = await findSnapshot(app, id);
      await dropSnapshot(app, snap, 'snapshot.deleted', 'deleted');
      return snap;
    },

    /** Into a new volume (not attached to anything until a manifest names it). */
    async restoreNew(auth: AuthContext, appName: string, id: string, name: string | undefined): Promise<Volume> {
      const app = await appOf(auth, appName, 'deploy');
      const snap = await findSnapshot(app, id);
      const newName = name ?? `${snap.volumeName}-${snap.id.slice(-6)}`;
      const [taken] = await db.select().from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, newName), isNull(volumes.deletedAt)));
      if (taken) throw new PierError('E_VOLUME_EXISTS', `app ${app.name} already has a volume ${newName}`, { status: 409, hint: 'pass --name with a free name, or --in-place to restore that volume itself' });
      const volumeId = newId('vol');
      const at = roots.get(snap.root);
      await at.restore(snap.id, volumeId);
      const check = await at.treeHash({ volume: volumeId });
      if (check.sha256 !== snap.sha256) {
        await at.remove(volumeId);
        throw new PierError('E_SNAPSHOT_CORRUPT', `the restored data does not match snapshot ${id} (sha256 ${check.sha256}, expected ${snap.sha256})`, { status: 500, hint: 'nothing was created; the snapshot may be damaged' });
      }
      return transactions.run(async (t) => {
        // On a swarm node's root, the new volume is on the node its snapshot's volume was on.
        const [source] = snap.volumeId && nodeRootAddress(snap.root) !== null ? await t.tx.select({ nodeId: volumes.nodeId }).from(volumes).where(eq(volumes.id, snap.volumeId)) : [];
        const [row] = await t.tx.insert(volumes).values({ id: volumeId, appId: app.id, name: newName, spec: newName, nodeId: source?.nodeId ?? options.nodeId, driver: at.kind, root: snap.root }).returning();
        await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.restored', reason: 'new-volume', message: `snapshot ${id} restored into a new volume ${newName}`, data: { volumeId, snapshotId: id } });
        return row as Volume;
      });
    },

    /** Stop the slot, take a pre-restore snapshot, swap the data, start again; newer snapshots stay. */
    async restoreInPlace(auth: AuthContext, appName: string, id: string): Promise<{ volume: Volume; preRestoreSnapshot: Snapshot }> {
      const app = await appOf(auth, appName, 'deploy');
      const snap = await findSnapshot(app, id);
      const [volume] = snap.volumeId ? await db.select().from(volumes).where(and(eq(volumes.id, snap.volumeId), isNull(volumes.deletedAt))) : [];
      if (!volume) {
        throw new PierError('E_VOLUME_NOT_FOUND', `the volume of snapshot ${id} (${snap.volumeName}) is gone`, { status: 404, hint: `restore into a new volume instead: pier volumes restore --app ${app.name} ${id}` });
      }
      if (volume.root !== snap.root) {
        throw new PierError('E_SNAPSHOT_ELSEWHERE', `snapshot ${id} is on root ${snap.root}, volume ${volume.name} moved to root ${volume.root}`, {
          status: 409,
          hint: `restore it into a new volume (pier volumes restore --app ${app.name} ${id} --name NEW), or move the volume back first`,
        });
      }
      const at = roots.get(volume.root);
      return serial(volume.id, async () => {
        const holder = await liveHolder(volume);
        await transactions.run(async (t) => {
          const [marked] = await t.tx.update(volumes).set({ state: 'restoring', updatedAt: new Date() }).where(and(eq(volumes.id, volume.id), eq(volumes.state, 'ready'))).returning();
          if (!marked) throw new PierError('E_VOLUME_BUSY', `volume ${volume.name} is being restored or moved already`, { status: 409, hint: 'wait for it to finish' });
          if (holder) {
            const now = new Date();
            await t.tx
              .update(instances)
              .set({ desiredState: 'stopped', drainUntil: now, lastReason: `volume ${volume.name} restored in place`, updatedAt: now })
              .where(and(eq(instances.id, holder.instanceId), eq(instances.desiredState, 'running')));
          }
          await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.restoring', reason: 'in-place', message: `volume ${volume.name} is restored in place from snapshot ${id}`, data: { volumeId: volume.id, snapshotId: id, instanceId: holder?.instanceId ?? null } });
        });
        options.enqueue(app.id);
        try {
          if (holder) await stopHolder(holder);
          const pre = await take(app, { ...volume, attachedInstanceId: null }, 'pre-restore', null);
          await at.replace(volume.id, snap.id);
          const check = await at.treeHash({ volume: volume.id });
          if (check.sha256 !== snap.sha256) throw new PierError('E_SNAPSHOT_CORRUPT', `the restored data does not match snapshot ${id}`, { status: 500, hint: `the data before the restore is in snapshot ${pre.id}` });
          await setState(app, volume, 'ready', 'volume.restored', `volume ${volume.name} restored in place from snapshot ${id}; the data before is in snapshot ${pre.id}`, { volumeId: volume.id, snapshotId: id, preRestoreSnapshotId: pre.id });
          return { volume: { ...volume, state: 'ready' as const }, preRestoreSnapshot: pre };
        } catch (err) {
          await setState(app, volume, 'ready', 'volume.restore_failed', `restore of volume ${volume.name} failed: ${(err as Error).message}`, { volumeId: volume.id, snapshotId: id });
          throw err;
        } finally {
          options.enqueue(app.id);
        }
      });
    },

    /** For the keeper (volume-keeper.ts): scheduled snapshots, retention, volumes of deleted apps. */
    internals: { take, retire, dropSnapshot, liveHolder, specOf, serial, stopHolder, stopUnnamedWriter, findVolume, now: clock },
    /** The default root's driver (export and import use `roots`: an import names its root, default `default`). */
    driver,
    roots,
    findApp: appOf,
    findSnapshot,
    async recordImported(app: App, snap: Omit<Snapshot, 'createdAt' | 'appId' | 'expiresAt'>): Promise<Snapshot> {
      return transactions.run(async (t) => {
        const [row] = await t.tx.insert(snapshots).values({ ...snap, appId: app.id }).returning();
        await t.record({ orgId: app.orgId, appId: app.id, type: 'snapshot.imported', reason: 'imported', message: `snapshot ${snap.id} of volume ${snap.volumeName} imported`, data: { snapshotId: snap.id, sha256: snap.sha256 } });
        return row as Snapshot;
      });
    },
  };
}

export type VolumeService = ReturnType<typeof createVolumeService>;
