// ACME state shared by every API server on the database (api/certificates/): the tls-alpn-01
// challenges of orders in progress, which every server's edge feed sends to its edges, and the
// backoff of names whose last order failed, so a restarted server does not order again at once.
import { index, integer, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { createdAt, time } from './columns.js';
import { apps } from './apps.js';

export const acmeChallenges = pgTable(
  'acme_challenges',
  {
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    /** The host name being validated, lower case. */
    hostname: text('hostname').notNull(),
    /** The CA's challenge token: two orders for one name (two apps, or a retry) never overwrite each other. */
    token: text('token').notNull(),
    /** The self-signed challenge certificate (RFC 8737 acmeIdentifier extension), PEM. */
    certPem: text('cert_pem').notNull(),
    /** Its key, sealed by the key vault like certificates' keys. */
    keyEncrypted: text('key_encrypted').notNull(),
    createdAt: createdAt(),
    /** Swept after this even if the server running the order died before removing it. */
    expiresAt: time('expires_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.appId, t.hostname, t.token] }), index('acme_challenges_expires_at').on(t.expiresAt)],
);

export const acmeBackoff = pgTable(
  'acme_backoff',
  {
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    hostname: text('hostname').notNull(),
    /** Failed orders in a row. */
    failures: integer('failures').notNull(),
    /** No order for the name before this. */
    nextAt: time('next_at').notNull(),
    lastError: text('last_error').notNull(),
  },
  (t) => [primaryKey({ columns: [t.appId, t.hostname] })],
);

export type AcmeChallengeRow = typeof acmeChallenges.$inferSelect;
