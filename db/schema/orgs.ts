// An organisation owns apps and tokens; names are unique.
import { pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id } from './columns.js';

export const orgs = pgTable('orgs', {
  id: id(),
  name: text('name').notNull().unique(),
  createdAt: createdAt(),
});

export type Org = typeof orgs.$inferSelect;
