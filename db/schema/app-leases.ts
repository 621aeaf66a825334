// Who reconciles an app, as a fencing token: the server that takes an app's advisory lock bumps
// its epoch, and every write the reconciler makes first checks that the epoch is still its own,
// so a server that lost its lock (its lock session died) cannot write over the new holder's work.
import { bigint, pgTable, text } from 'drizzle-orm/pg-core';
import { time } from './columns.js';
import { apps } from './apps.js';

export const appLeases = pgTable('app_leases', {
  appId: text('app_id')
    .primaryKey()
    .references(() => apps.id, { onDelete: 'cascade' }),
  /** Grows by one each time a server takes the app's lock. */
  epoch: bigint('epoch', { mode: 'number' }).notNull(),
  /** The server that holds it: `host:pid:random`, for operators reading the table. */
  holder: text('holder').notNull(),
  acquiredAt: time('acquired_at').notNull().defaultNow(),
});

export type AppLease = typeof appLeases.$inferSelect;
