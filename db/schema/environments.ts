// Environments: every app belongs to one (production unless named otherwise). Persistent ones
// (production, staging) live until destroyed with --force; previews come from a branch or pull
// request, have a base they were made from and an expiry after which the reaper destroys them.
// A destroyed environment stays as a tombstone (destroyed_at set) so its events stay readable.
import { sql } from 'drizzle-orm';
import { boolean, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, id, time, updatedAt } from './columns.js';
import { orgs } from './orgs.js';

export const ENVIRONMENT_KINDS = ['persistent', 'preview'] as const;
export type EnvironmentKind = (typeof ENVIRONMENT_KINDS)[number];

export const environments = pgTable(
  'environments',
  {
    id: id(),
    orgId: text('org_id').notNull().references(() => orgs.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    kind: text('kind', { enum: ENVIRONMENT_KINDS }).notNull(),
    /** Destroying it needs --force and its name again (production is protected). */
    protected: boolean('protected').notNull().default(false),
    /** The environment a preview was made from (its secrets may be copied from there). */
    base: text('base'),
    /** A preview's expiry: the reaper destroys it then. Null: never expires. */
    expiresAt: time('expires_at'),
    /** When the "expires within the hour" event was recorded (once per expiry). */
    warnedAt: time('warned_at'),
    branch: text('branch'),
    commit: text('commit'),
    pr: integer('pr'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    destroyedAt: time('destroyed_at'),
  },
  (t) => [uniqueIndex('environments_org_name').on(t.orgId, t.name).where(sql`${t.destroyedAt} is null`)],
);

export type Environment = typeof environments.$inferSelect;

/** The environment of apps and requests that name none. */
export const DEFAULT_ENVIRONMENT = 'production';
