// A volume: data of one app on one node, mounted at a path of one process group and attached to
// at most one instance at a time (one writer). Owned by api/volumes/volume-service.ts; the
// reconciler attaches it when it starts an instance. A deleted volume stays as a row (deleted_at)
// until its undelete window ends: its data and final snapshot are kept until then.
import { sql } from 'drizzle-orm';
import { bigint, boolean, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, time, updatedAt } from './columns.js';
import { apps } from './apps.js';
import { nodes } from './nodes.js';

export const VOLUME_STATES = ['ready', 'restoring', 'moving', 'deleted'] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

export const volumes = pgTable(
  'volumes',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    /** The manifest's name; per-instance volumes are `<name>-<slot>`. */
    name: text('name').notNull(),
    /** The manifest's `[[volumes]]` entry it came from (null: made by `pier volumes create` or a restore). */
    spec: text('spec'),
    process: text('process'),
    /** Where it is mounted in the container. */
    mountPath: text('mount_path'),
    slot: integer('slot'),
    nodeId: text('node_id').notNull().references(() => nodes.id),
    driver: text('driver', { enum: ['dir', 'btrfs'] }).notNull(),
    /** The storage root (on its node) that holds the data: `default` unless moved (api/volumes/volume-roots.ts). */
    root: text('root').notNull().default('default'),
    sizeLimitBytes: bigint('size_limit_bytes', { mode: 'number' }),
    perInstance: boolean('per_instance').notNull().default(false),
    /** Observed: the instance it is attached to (its one writer), or null. */
    attachedInstanceId: text('attached_instance_id'),
    /** ready | restoring or moving (no instance may start on it) | deleted (undelete until purge_after). */
    state: text('state', { enum: VOLUME_STATES }).notNull().default('ready'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    deletedAt: time('deleted_at'),
    /** When a deleted volume's data and final snapshot are removed for good. */
    purgeAfter: time('purge_after'),
  },
  (t) => [uniqueIndex('volumes_app_name').on(t.appId, t.name).where(sql`${t.deletedAt} is null`)],
);

export type Volume = typeof volumes.$inferSelect;
