// The edges that report to this API (POST /v1/edge/report): who each is, the snapshot version it
// serves and its last report (per-endpoint state and counters), kept as sent. An edge is live while
// its reports keep coming (api/edge-reports.ts); rows of edges that went away stay, for `pier edges`.
import { bigint, integer, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { time } from './columns.js';

export const edges = pgTable('edges', {
  /** The edge's own id, kept in its data folder. */
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  version: text('version').notNull(),
  pid: integer('pid').notNull(),
  workers: integer('workers').notNull(),
  /** Snapshot version every worker serves; null before the first apply. */
  appliedVersion: bigint('applied_version', { mode: 'number' }),
  lastError: text('last_error'),
  /** The last report's body as sent (EDGE-REPORT.md). */
  report: jsonb('report').$type<Record<string, unknown>>().notNull(),
  firstSeenAt: time('first_seen_at').notNull().defaultNow(),
  lastSeenAt: time('last_seen_at').notNull().defaultNow(),
  /** When a server recorded its silence (edge.disconnected); cleared by its next report. */
  disconnectedAt: time('disconnected_at'),
});

export type Edge = typeof edges.$inferSelect;
