// Who holds a public address:port, enforced by the database so two deploys can never both take one.
// A port is in one mode: `tcp` (one endpoint alone, claim name '') or `tls` (passthrough endpoints
// sharing it, one claim per SNI name, '*' for the default). `port_modes` has one row per
// address:port; a claim references its (address, port, mode), so a claim in the other mode is a
// foreign-key violation, and a second claim of one name is a unique violation. Claims are written
// with the endpoint rows (api/port-claims.ts) and go with them (ON DELETE CASCADE).
import { foreignKey, index, integer, pgTable, primaryKey, text, unique } from 'drizzle-orm/pg-core';
import { apps } from './apps.js';
import { endpoints } from './endpoints.js';

export const PORT_MODES = ['tcp', 'tls'] as const;
export type PortMode = (typeof PORT_MODES)[number];

export const portModes = pgTable(
  'port_modes',
  {
    /** An address literal, or '*' for the edges' shared addresses. */
    address: text('address').notNull(),
    port: integer('port').notNull(),
    mode: text('mode', { enum: PORT_MODES }).notNull(),
  },
  (t) => [primaryKey({ name: 'port_modes_pkey', columns: [t.address, t.port] }), unique('port_modes_address_port_mode').on(t.address, t.port, t.mode)],
);

export const portClaims = pgTable(
  'port_claims',
  {
    address: text('address').notNull(),
    port: integer('port').notNull(),
    /** '' for a tcp endpoint; the SNI name, or '*' for the SNI default, on a tls port. */
    name: text('name').notNull(),
    mode: text('mode', { enum: PORT_MODES }).notNull(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    endpointId: text('endpoint_id').notNull().references(() => endpoints.id, { onDelete: 'cascade' }),
  },
  (t) => [
    unique('port_claims_address_port_name').on(t.address, t.port, t.name),
    index('port_claims_app_id').on(t.appId),
    index('port_claims_endpoint_id').on(t.endpointId),
    foreignKey({ name: 'port_claims_mode', columns: [t.address, t.port, t.mode], foreignColumns: [portModes.address, portModes.port, portModes.mode] }),
  ],
);

export type PortClaim = typeof portClaims.$inferSelect;
