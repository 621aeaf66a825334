// A move of a volume (with its instance) from one storage root to another: one row per move, its
// phase written before the phase starts, so a server that dies mid-move knows at start what to
// undo (before `switched`: roll back to the source) or finish (from `switched` on). Owned by
// api/volumes/volume-mover.ts; the keeper purges the source once `retain_until` has passed.
import { bigint, index, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { createdAt, id, time, updatedAt } from './columns.js';
import { apps } from './apps.js';

export const MOVE_PHASES = ['precopy', 'cutover', 'final', 'send', 'verify', 'switched', 'done'] as const;
export type MovePhase = (typeof MOVE_PHASES)[number];
export const MOVE_STATES = ['running', 'moved', 'rolled-back', 'purged'] as const;
export type MoveState = (typeof MOVE_STATES)[number];

export const volumeMoves = pgTable(
  'volume_moves',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    volumeId: text('volume_id').notNull(),
    fromRoot: text('from_root').notNull(),
    toRoot: text('to_root').notNull(),
    phase: text('phase', { enum: MOVE_PHASES }).notNull(),
    state: text('state', { enum: MOVE_STATES }).notNull().default('running'),
    /** The instance stopped at cutover (started again on the source if the move rolls back). */
    instanceId: text('instance_id'),
    /**
     * Its replacement on the target, when made before the cutover (created, not started): the
     * move starts it after the switch; a rollback removes its container and deletes the row.
     */
    targetInstanceId: text('target_instance_id'),
    bytesMoved: bigint('bytes_moved', { mode: 'number' }).notNull().default(0),
    downtimeMs: bigint('downtime_ms', { mode: 'number' }),
    error: text('error'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    /** Until then the source (volume and move snapshots) is kept read-only; then the keeper purges it. */
    retainUntil: time('retain_until'),
  },
  (t) => [uniqueIndex('volume_moves_one_running').on(t.volumeId).where(sql`${t.state} = 'running'`), index('volume_moves_app_id').on(t.appId)],
);

export type VolumeMove = typeof volumeMoves.$inferSelect;
