// An app: a name unique within its org, and the release that should run (desired state).
import { jsonb, pgTable, text, unique } from 'drizzle-orm/pg-core';
import { createdAt, id, updatedAt } from './columns.js';
import { orgs } from './orgs.js';

export const apps = pgTable(
  'apps',
  {
    id: id(),
    orgId: text('org_id').notNull().references(() => orgs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** Desired: the release whose instances should run. Null until the first deploy. */
    currentReleaseId: text('current_release_id'),
    /** Desired: instance counts set by `pier scale`, per process; they outlive deploys. */
    scale: jsonb('scale').$type<Record<string, number>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('apps_org_name').on(t.orgId, t.name)],
);

export type App = typeof apps.$inferSelect;
