// An app: a name unique among the org's live apps, and the release that should run (desired
// state). A deleted app stays as a tombstone (deleted_at set) so its events stay readable; its
// name is free for a new app.
import { sql } from 'drizzle-orm';
import { jsonb, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, time, updatedAt } from './columns.js';
import { orgs } from './orgs.js';

export const apps = pgTable(
  'apps',
  {
    id: id(),
    orgId: text('org_id').notNull().references(() => orgs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /** The environment it belongs to (db/schema/environments.ts); app names are unique per environment. */
    environment: text('environment').notNull().default('production'),
    /** Desired: the release whose instances should run. Null until the first deploy, and once deleted. */
    currentReleaseId: text('current_release_id'),
    /**
     * Desired: instance counts set by `pier scale`, per process. They outlive deploys whose
     * manifest leaves `count` out; a deploy that writes `count` for a process clears its entry.
     */
    scale: jsonb('scale').$type<Record<string, number>>().notNull().default({}),
    /** When each entry of `scale` was set (ISO time), to say where a desired count came from. */
    scaledAt: jsonb('scaled_at').$type<Record<string, string>>().notNull().default({}),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    /** Set by `pier apps delete`: the app's instances, endpoints and tokens are gone; events stay. */
    deletedAt: time('deleted_at'),
  },
  (t) => [uniqueIndex('apps_org_env_name').on(t.orgId, t.environment, t.name).where(sql`${t.deletedAt} is null`)],
);

export type App = typeof apps.$inferSelect;
