// Docker engines the scheduler may place instances on.
import { jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id, time } from './columns.js';

export const nodes = pgTable('nodes', {
  id: id(),
  name: text('name').notNull().unique(),
  /** How to reach the engine, e.g. `unix:///var/run/docker.sock`. */
  endpoint: text('endpoint').notNull(),
  /** The address containers' ports are published on, as the edge reaches them. */
  publishAddress: text('publish_address').notNull().default('127.0.0.1'),
  labels: jsonb('labels').$type<Record<string, string>>().notNull().default({}),
  state: text('state').notNull().default('ready'),
  createdAt: createdAt(),
  lastSeenAt: time('last_seen_at'),
});

export type Node = typeof nodes.$inferSelect;
