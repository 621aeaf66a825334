// API tokens: only a SHA-256 hash of the secret is stored. A token is org-wide or bound to one app.
import { index, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id, time } from './columns.js';
import { orgs } from './orgs.js';
import { apps } from './apps.js';

/** `connect`: open tunnels (`pier port-forward`, `pier connect`) to one app's instances; always bound to an app. */
export const TOKEN_SCOPES = ['read', 'deploy', 'exec', 'edge', 'admin', 'connect'] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];

export const tokens = pgTable('tokens', {
  id: id(),
  orgId: text('org_id').notNull().references(() => orgs.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  hash: text('hash').notNull().unique(),
  scope: text('scope', { enum: TOKEN_SCOPES }).notNull(),
  appId: text('app_id').references(() => apps.id, { onDelete: 'cascade' }),
  /** Environment names the token may act in: a pattern such as `pr-*` (null: every one). */
  environments: text('environments'),
  createdAt: createdAt(),
  expiresAt: time('expires_at'),
  lastUsedAt: time('last_used_at'),
  revokedAt: time('revoked_at'),
  /** After a rotation with an overlap: the old secret's hash, still accepted until previous_valid_until. */
  previousHash: text('previous_hash'),
  previousValidUntil: time('previous_valid_until'),
  rotatedAt: time('rotated_at'),
}, (t) => [index('tokens_previous_hash').on(t.previousHash)]);

export type Token = typeof tokens.$inferSelect;
