// Attaches an instance's volumes as the reconciler creates its container (phase two of a start):
// finds or makes each volume the manifest gives its process, makes sure no other live container
// holds it (one writer), records the attachment under the app's lease and returns the mounts.
// A volume held elsewhere or being restored is a transient refusal: the start waits for a later pass.
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { instances, volumes, type Instance, type Volume } from '../../db/schema/index.js';
import { newId } from '../ids.js';
import type { Manifest, VolumeSpec as ManifestVolume } from '../manifest.js';
import { PierError } from '../pier-error.js';
import type { MountSpec, Runtime } from '../runtime/runtime.js';
import type { AppLeases, Lease } from '../scheduler/app-leases.js';
import { isLive } from '../scheduler/plan.js';
import { dockerVolumeSpec } from './docker-volume-name.js';
import type { VolumeDriver } from './volume-driver.js';
import { createVolumeRoots, DEFAULT_ROOT, type VolumeRoots } from './volume-roots.js';

export interface VolumeAttacherOptions {
  db: Db;
  runtime: Runtime;
  leases: AppLeases;
  /** The default root's driver: new volumes are made there. */
  driver: VolumeDriver;
  /** Every root (a moved volume lives on another); default: the default root alone. */
  roots?: VolumeRoots | undefined;
  nodeId: string;
  installationId: string;
}

export interface AttachContext {
  app: { id: string; orgId: string; name: string };
  lease: Lease;
}

export function createVolumeAttacher(options: VolumeAttacherOptions) {
  const { db, runtime, leases, driver } = options;
  const roots = options.roots ?? createVolumeRoots(new Map([[DEFAULT_ROOT, driver]]));

  /**
   * The instance other than `row` that holds the volume, if any: one whose container is live, or
   * one that should run and has no container yet (its start is under way: it attached first).
   */
  async function heldElsewhere(volume: Volume, row: Instance): Promise<string | null> {
    if (!volume.attachedInstanceId || volume.attachedInstanceId === row.id) return null;
    const [holder] = await db.select().from(instances).where(eq(instances.id, volume.attachedInstanceId));
    if (!holder) return null;
    if (!holder.containerId) return holder.desiredState === 'running' ? holder.id : null;
    const info = await runtime.inspect(holder.containerId);
    return info && isLive(info.state) ? holder.id : null;
  }

  async function make(spec: ManifestVolume, name: string, slot: number | null, ctx: AttachContext): Promise<Volume> {
    const id = newId('vol');
    await driver.create(id, { sizeLimitBytes: spec.size ?? null });
    const row = await leases.fenced(ctx.lease, async (t) => {
      const [inserted] = await t.tx
        .insert(volumes)
        .values({ id, appId: ctx.app.id, name, spec: spec.name, process: spec.process, mountPath: spec.path, slot, nodeId: options.nodeId, driver: driver.kind, sizeLimitBytes: spec.size ?? null, perInstance: spec.per_instance })
        .returning();
      await t.record({ orgId: ctx.app.orgId, appId: ctx.app.id, type: 'volume.created', reason: 'manifest', message: `volume ${name} created (${driver.kind})`, data: { volumeId: id, name, driver: driver.kind } });
      return inserted as Volume;
    });
    return row;
  }

  /** The volume this instance gets for one `[[volumes]]` entry. */
  async function pick(spec: ManifestVolume, row: Instance, ctx: AttachContext): Promise<Volume> {
    const live = and(eq(volumes.appId, ctx.app.id), isNull(volumes.deletedAt));
    if (!spec.per_instance) {
      const [found] = await db.select().from(volumes).where(and(live, eq(volumes.name, spec.name)));
      const volume = found ?? (await make(spec, spec.name, null, ctx));
      const holder = await heldElsewhere(volume, row);
      if (holder) throw attached(volume, holder);
      return volume;
    }
    const slots = await db.select().from(volumes).where(and(live, eq(volumes.spec, spec.name), eq(volumes.perInstance, true))).orderBy(asc(volumes.slot));
    for (const volume of slots) {
      if (volume.attachedInstanceId === row.id) return volume;
    }
    for (const volume of slots) {
      if (volume.state === 'ready' && !(await heldElsewhere(volume, row))) return volume;
    }
    const used = new Set(slots.map((v) => v.slot));
    let slot = 0;
    while (used.has(slot)) slot++;
    return make(spec, `${spec.name}-${slot}`, slot, ctx);
  }

  /** The starts of one pass run side by side: picking a slot and attaching it is one at a time per app. */
  const chains = new Map<string, Promise<unknown>>();
  function oneAtATime<T>(appId: string, fn: () => Promise<T>): Promise<T> {
    const next = (chains.get(appId) ?? Promise.resolve()).catch(() => undefined).then(fn);
    chains.set(appId, next);
    void next
      .finally(() => {
        if (chains.get(appId) === next) chains.delete(appId);
      })
      .catch(() => undefined);
    return next;
  }

  return {
    /** The mounts of the instance's container; throws a transient PierError when a volume is busy. */
    attach(row: Instance, manifest: Manifest, ctx: AttachContext): Promise<MountSpec[]> {
      return oneAtATime(ctx.app.id, () => attachAll(row, manifest, ctx));
    },
  };

  async function attachAll(row: Instance, manifest: Manifest, ctx: AttachContext): Promise<MountSpec[]> {
    const mounts: MountSpec[] = [];
    for (const spec of (manifest.volumes ?? []).filter((v) => v.process === row.process)) {
      const volume = await pick(spec, row, ctx);
      if (volume.state !== 'ready') {
        throw new PierError('E_VOLUME_BUSY', `volume ${volume.name} is being ${volume.state === 'moving' ? 'moved' : 'restored'}; ${row.id} starts once it is done`, { status: 409 });
      }
      const at = roots.get(volume.root);
      if (!(await at.exists(volume.id))) {
        throw new PierError('E_VOLUME_MISSING', `the data of volume ${volume.name} (${at.volumePath(volume.id)}) is missing on this node`, {
          status: 500,
          hint: `restore it from a snapshot (pier snapshots list --app ${ctx.app.name}) or delete the volume (pier volumes delete --app ${ctx.app.name} ${volume.name})`,
        });
      }
      await runtime.ensureVolume(dockerVolumeSpec(volume, at.volumePath(volume.id), options.installationId));
      await leases.fenced(ctx.lease, async (t) => {
        // Only while it is still ready where it was read: a move or restore that began since wins.
        const [attached] = await t.tx
          .update(volumes)
          .set({ attachedInstanceId: row.id, process: spec.process, mountPath: spec.path, updatedAt: new Date() })
          .where(and(eq(volumes.id, volume.id), eq(volumes.state, 'ready'), eq(volumes.root, volume.root)))
          .returning({ id: volumes.id });
        if (!attached) throw new PierError('E_VOLUME_BUSY', `volume ${volume.name} began to be moved or restored; ${row.id} starts once it is done`, { status: 409 });
      });
      mounts.push({ volume: dockerVolumeSpec(volume, '', '').name, target: spec.path });
    }
    return mounts;
  }
}

export type VolumeAttacher = ReturnType<typeof createVolumeAttacher>;

function attached(volume: Volume, holder: string): PierError {
  return new PierError('E_VOLUME_ATTACHED', `volume ${volume.name} is attached to ${holder}, which still runs`, {
    status: 409,
    hint: 'a volume has one writer: the new instance starts once the old one has stopped',
  });
}
