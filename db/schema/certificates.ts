// TLS certificates of an app, served by the edge on its tls = "terminate" endpoints (docs/tls.md).
// The private key is stored encrypted (api/certificates/key-vault.ts) with a key the server keeps
// in its data folder, outside the database: a database dump alone does not give the keys away.
import { index, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id, time } from './columns.js';
import { apps } from './apps.js';

export const certificates = pgTable(
  'certificates',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    /** DNS names of the leaf (subjectAltName), lower case; `*.example.com` for wildcards. */
    names: jsonb('names').$type<string[]>().notNull(),
    /** PEM chain, leaf first. */
    chainPem: text('chain_pem').notNull(),
    /** The private key, encrypted: `v1:<iv>:<tag>:<ciphertext>`, base64url parts. */
    keyEncrypted: text('key_encrypted').notNull(),
    /** SHA-256 fingerprint of the leaf, colon-separated hex (as openssl prints it). */
    fingerprint: text('fingerprint').notNull(),
    issuer: text('issuer').notNull(),
    notBefore: time('not_before').notNull(),
    notAfter: time('not_after').notNull(),
    /** 'upload' (pier certs add) or 'acme'. */
    source: text('source').notNull().default('upload'),
    /**
     * ACME only: when the keeper saw that no endpoint of the app wants the certificate's names any
     * more (null: wanted). It is kept, unserved, until `removeAfter`, and used again if a name
     * comes back (api/certificates/certificate-keeper.ts).
     */
    unusedSince: time('unused_since'),
    removeAfter: time('remove_after'),
    createdAt: createdAt(),
  },
  (t) => [index('certificates_app_id').on(t.appId)],
);

export type Certificate = typeof certificates.$inferSelect;
