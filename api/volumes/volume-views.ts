// What the API answers about volumes and snapshots: the views and their zod schemas (OpenAPI).
import { z } from 'zod';
import { MOVE_PHASES, MOVE_STATES, SNAPSHOT_KINDS, VOLUME_STATES, type MovePhase, type VolumeMove, type Snapshot, type Volume } from '../../db/schema/index.js';

const time = z.string().describe('ISO 8601 time');

export const volumeViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  process: z.string().nullable(),
  path: z.string().nullable().describe('where it is mounted in the container'),
  driver: z.enum(['dir', 'btrfs']),
  root: z.string().describe('the storage root that holds it (`default` unless made elsewhere with --root or moved: pier volumes move)'),
  perInstance: z.boolean(),
  slot: z.number().nullable(),
  sizeLimitBytes: z.number().nullable(),
  attachedInstance: z.string().nullable(),
  state: z.enum(VOLUME_STATES),
  createdAt: time,
  deletedAt: time.nullable(),
  purgeAfter: time.nullable().describe('a deleted volume can be undeleted until then'),
});
export type VolumeView = z.infer<typeof volumeViewSchema>;

export const snapshotViewSchema = z.object({
  id: z.string(),
  volume: z.string(),
  volumeId: z.string().nullable(),
  kind: z.enum(SNAPSHOT_KINDS),
  driver: z.enum(['dir', 'btrfs']),
  root: z.string().describe('the storage root that holds it'),
  consistency: z.string().describe('stopped, paused, hook or none (crash-consistent)'),
  bytes: z.number(),
  files: z.number(),
  sha256: z.string().describe('over the file tree: paths, sizes and contents'),
  createdAt: time,
  expiresAt: time.nullable(),
});
export type SnapshotView = z.infer<typeof snapshotViewSchema>;

export const volumeDescriptionSchema = z.object({ volume: volumeViewSchema, usedBytes: z.number().nullable(), snapshots: z.array(snapshotViewSchema) });
export type VolumeDescription = z.infer<typeof volumeDescriptionSchema>;

export const moveViewSchema = z.object({
  id: z.string(),
  volumeId: z.string(),
  from: z.string().describe('the storage root it left'),
  to: z.string().describe('the storage root it is on now'),
  state: z.enum(MOVE_STATES),
  phase: z.enum(MOVE_PHASES).describe('the last phase reached'),
  bytesMoved: z.number().describe('bytes of the send streams (pre-copy and final delta)'),
  downtimeMs: z.number().nullable().describe('from the instance leaving the backends to its container running on the target (null: no instance, or it had not started within a minute)'),
  retainUntil: time.nullable().describe('the source is kept read-only until then'),
  phases: z.array(z.object({ phase: z.enum(MOVE_PHASES), ms: z.number() })).describe('how long each phase took'),
  steps: z.array(z.object({ step: z.string(), ms: z.number() })).describe('the downtime step by step: ms since the cutover began (drained, stopped, final snapshot, delta received, verified, target volume made, switched, running on the target)'),
});
export type MoveView = z.infer<typeof moveViewSchema>;

export function moveView(m: VolumeMove, phases: { phase: MovePhase; ms: number }[], steps: { step: string; ms: number }[] = []): MoveView {
  return { id: m.id, volumeId: m.volumeId, from: m.fromRoot, to: m.toRoot, state: m.state, phase: m.phase, bytesMoved: m.bytesMoved, downtimeMs: m.downtimeMs, retainUntil: m.retainUntil?.toISOString() ?? null, phases, steps };
}

export function volumeView(v: Volume): VolumeView {
  return {
    id: v.id,
    name: v.name,
    process: v.process,
    path: v.mountPath,
    driver: v.driver,
    root: v.root,
    perInstance: v.perInstance,
    slot: v.slot,
    sizeLimitBytes: v.sizeLimitBytes,
    attachedInstance: v.attachedInstanceId,
    state: v.state,
    createdAt: v.createdAt.toISOString(),
    deletedAt: v.deletedAt?.toISOString() ?? null,
    purgeAfter: v.purgeAfter?.toISOString() ?? null,
  };
}

export function snapshotView(s: Snapshot): SnapshotView {
  return {
    id: s.id,
    volume: s.volumeName,
    volumeId: s.volumeId,
    kind: s.kind,
    driver: s.driver,
    root: s.root,
    consistency: s.consistency,
    bytes: s.bytes,
    files: s.files,
    sha256: s.sha256,
    createdAt: s.createdAt.toISOString(),
    expiresAt: s.expiresAt?.toISOString() ?? null,
  };
}
