// What the API answers about volumes and snapshots: the views and their zod schemas (OpenAPI).
import { z } from 'zod';
import { SNAPSHOT_KINDS, type Snapshot, type Volume } from '../../db/schema/index.js';

const time = z.string().describe('ISO 8601 time');

export const volumeViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  process: z.string().nullable(),
  path: z.string().nullable().describe('where it is mounted in the container'),
  driver: z.enum(['dir', 'btrfs']),
  perInstance: z.boolean(),
  slot: z.number().nullable(),
  sizeLimitBytes: z.number().nullable(),
  attachedInstance: z.string().nullable(),
  state: z.enum(['ready', 'restoring', 'deleted']),
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

export function volumeView(v: Volume): VolumeView {
  return {
    id: v.id,
    name: v.name,
    process: v.process,
    path: v.mountPath,
    driver: v.driver,
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
    consistency: s.consistency,
    bytes: s.bytes,
    files: s.files,
    sha256: s.sha256,
    createdAt: s.createdAt.toISOString(),
    expiresAt: s.expiresAt?.toISOString() ?? null,
  };
}
