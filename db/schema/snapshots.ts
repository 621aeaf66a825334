// A read-only copy of a volume at one moment, with its size and content checksum (sha256 over
// the file tree, see api/volumes/tree-hash.ts). Kept until expires_at (null: until deleted).
import { bigint, index, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id, time } from './columns.js';
import { apps } from './apps.js';

export const SNAPSHOT_KINDS = ['manual', 'scheduled', 'final', 'pre-restore', 'imported'] as const;
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number];

export const snapshots = pgTable(
  'snapshots',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    /** The volume it was taken of (kept when that volume is deleted: restore needs no volume). */
    volumeId: text('volume_id'),
    volumeName: text('volume_name').notNull(),
    kind: text('kind', { enum: SNAPSHOT_KINDS }).notNull(),
    driver: text('driver', { enum: ['dir', 'btrfs'] }).notNull(),
    /** The storage root that holds it (a snapshot stays where it was taken when its volume moves). */
    root: text('root').notNull().default('default'),
    /** How the instance was held while it was taken: stopped, paused, hook, none (crash-consistent). */
    consistency: text('consistency').notNull(),
    bytes: bigint('bytes', { mode: 'number' }).notNull(),
    files: bigint('files', { mode: 'number' }).notNull(),
    sha256: text('sha256').notNull(),
    createdAt: createdAt(),
    expiresAt: time('expires_at'),
  },
  (t) => [index('snapshots_app_id').on(t.appId)],
);

export type Snapshot = typeof snapshots.$inferSelect;
