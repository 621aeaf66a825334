// Secrets: one row per version of one key of one app (an app lives in one environment). The value
// is AES-256-GCM ciphertext under a key kept outside the database (api/secret-box.ts); `digest`
// is an HMAC of the value under a key derived from it, so equal values compare equal without the
// value being guessable from the database. A version with a null value is an unset.
import { integer, pgTable, text, unique } from 'drizzle-orm/pg-core';
import { createdAt, id } from './columns.js';
import { apps } from './apps.js';

export const secrets = pgTable(
  'secrets',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    version: integer('version').notNull(),
    /** base64 of iv (12 bytes) | tag (16 bytes) | ciphertext; null when this version unsets the key. */
    ciphertext: text('ciphertext'),
    /** `hmac-sha256:` and 16 hex digits; null for an unset. */
    digest: text('digest'),
    /** Which key file encrypted it (its id), for rotation. */
    keyId: text('key_id'),
    createdBy: text('created_by'),
    createdAt: createdAt(),
  },
  (t) => [unique('secrets_app_key_version').on(t.appId, t.key, t.version)],
);

export type Secret = typeof secrets.$inferSelect;
