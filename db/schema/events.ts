// The append-only event log: every state change, with the reason. Streams resume from an id.
import { bigserial, index, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { time } from './columns.js';

export const events = pgTable(
  'events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    time: time('time').notNull().defaultNow(),
    orgId: text('org_id').notNull(),
    appId: text('app_id'),
    instanceId: text('instance_id'),
    deploymentId: text('deployment_id'),
    type: text('type').notNull(),
    reason: text('reason').notNull().default(''),
    message: text('message').notNull().default(''),
    data: jsonb('data').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('events_app_id').on(t.appId, t.id)],
);

export type Event = typeof events.$inferSelect;
export type NewEvent = typeof events.$inferInsert;
