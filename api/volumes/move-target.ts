// The target instance of a volume move, made ahead of its cutover (api/volumes/volume-mover.ts,
// api/scheduler/prepared-start.ts): made with the moved volume on the target root and the
// process's other volumes where they are, started after the switch, or discarded.
import { and, eq, isNull } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, instances, releases, volumeMoves, volumes, type Volume, type VolumeMove } from '../../db/schema/index.js';
import { newInstanceId } from '../ids.js';
import type { Manifest } from '../manifest.js';
import type { MountSpec, Runtime } from '../runtime/runtime.js';
import type { PreparedStarts } from '../scheduler/prepared-start.js';
import { dockerVolumeName, dockerVolumeSpec } from './docker-volume-name.js';
import type { VolumeRoots } from './volume-roots.js';

export interface MoveTargetsOptions {
  db: Db;
  runtime: Runtime;
  roots: VolumeRoots;
  log: Logger;
  /** Without it no target is made ahead: the reconciler starts the instance after the switch. */
  prepared?: { starts: PreparedStarts; installationId: string } | undefined;
}

export function createMoveTargets(options: MoveTargetsOptions) {
  const { db, runtime, roots, log, prepared } = options;

  /**
   * Makes the instance that replaces the holder on the target, its container created and not
   * started (prepared-start.ts); null when the move goes without (the reconciler then starts it
   * after the switch). Only for a holder that runs the app's current release, and only while the
   * caller holds the app's reconcile lock to the switch (btrfs): a pass would remove a created
   * container of a row that has none, or drain it as surplus. The process's other volumes are
   * mounted where they are: each must be held by the holder and ready (not being moved or
   * restored itself); the switch hands them to the target with the moved one (`others`).
   * Its id is recorded first, so a rollback (here or after a restart) finds what to remove.
   */
  async function prepare(move: VolumeMove, volume: Volume): Promise<{ id: string; others: string[] } | null> {
    if (!prepared) return null;
    const [current] = await db.select().from(volumes).where(eq(volumes.id, volume.id));
    if (!current?.attachedInstanceId) return null;
    const [holder] = await db.select().from(instances).where(eq(instances.id, current.attachedInstanceId));
    const [app] = await db.select().from(apps).where(eq(apps.id, move.appId));
    if (!holder || !app || holder.desiredState !== 'running' || !holder.containerId || holder.releaseId !== app.currentReleaseId) return null;
    const [release] = await db.select().from(releases).where(eq(releases.id, holder.releaseId));
    const specs = ((release?.manifest as Manifest | undefined)?.volumes ?? []).filter((v) => v.process === holder.process);
    if (!release || !specs.some((s) => s.name === current.spec)) return null;
    // One volume per `[[volumes]]` entry of the process, each held by the holder now.
    const held = await db.select().from(volumes).where(and(eq(volumes.attachedInstanceId, holder.id), isNull(volumes.deletedAt)));
    const picked: { spec: (typeof specs)[number]; volume: Volume }[] = [];
    for (const spec of specs) {
      const of = held.filter((v) => v.spec === spec.name);
      const v = of[0];
      if (of.length !== 1 || !v) return null;
      if (v.id !== current.id && (v.state !== 'ready' || !roots.has(v.root))) return null;
      picked.push({ spec, volume: v.id === current.id ? current : v });
    }
    if (!picked.some((p) => p.volume.id === current.id)) return null;
    const id = newInstanceId(app.name, holder.process);
    await db.update(volumeMoves).set({ targetInstanceId: id, updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
    move.targetInstanceId = id;
    const mounts: MountSpec[] = [];
    for (const { spec, volume: v } of picked) {
      // The moved one binds where the data will be (Docker mounts it only when the container
      // starts); the others bind where they are, as the reconciler's attach would.
      const docker = v.id === current.id ? dockerVolumeSpec({ ...current, root: move.toRoot }, roots.get(move.toRoot).volumePath(v.id), prepared.installationId) : dockerVolumeSpec(v, roots.get(v.root).volumePath(v.id), prepared.installationId);
      await runtime.ensureVolume(docker);
      mounts.push({ volume: docker.name, target: spec.path });
    }
    await prepared.starts.prepare(app, holder, release, mounts, id);
    return { id, others: picked.filter((p) => p.volume.id !== current.id).map((p) => p.volume.id) };
  }

  /**
   * Starts the target instance made ahead; returns when it runs, or null when its start failed
   * (its container is removed then: the row stays, and the next pass makes it as any start).
   */
  async function start(move: VolumeMove, target: string): Promise<number | null> {
    try {
      await prepared?.starts.start(target);
      return Date.now();
    } catch (err) {
      log.warn({ err, move: move.id, instance: target }, 'target instance made ahead did not start; the reconciler makes it anew');
      await prepared?.starts.discard(target).catch((e: unknown) => log.warn({ err: e, move: move.id }, 'target container not removed; the next pass does'));
      return null;
    }
  }

  /** Undoes prepare: its container, its Docker volume and its row. */
  async function discard(move: VolumeMove): Promise<void> {
    const target = move.targetInstanceId;
    if (!target) return;
    await prepared?.starts.discard(target).catch(() => undefined);
    await runtime.removeVolume(dockerVolumeName(move.volumeId, move.toRoot)).catch(() => undefined);
    await db.delete(instances).where(and(eq(instances.id, target), isNull(instances.containerId)));
    await db.update(volumeMoves).set({ targetInstanceId: null }).where(eq(volumeMoves.id, move.id));
    move.targetInstanceId = null;
  }

  return { prepare, start, discard };
}

export type MoveTargets = ReturnType<typeof createMoveTargets>;
