// One private network per key (an organisation's id now; an environment's later: see
// api/private/private-network-key.ts): the Docker network its instances join, named and kept so a
// restarted server finds and reuses it, and the subnets it was given (the Nth /64 and /24 of the
// configured prefixes; the slot is unique, so two networks never get the same subnets).
import { integer, pgTable, text, unique } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { orgs } from './orgs.js';

export const privateNetworks = pgTable(
  'private_networks',
  {
    key: text('key').primaryKey(),
    orgId: text('org_id')
      .notNull()
      .references(() => orgs.id, { onDelete: 'cascade' }),
    /** The Docker network, e.g. `pier-private-org_…`. */
    name: text('name').notNull(),
    slot: integer('slot').notNull(),
    ipv6Subnet: text('ipv6_subnet').notNull(),
    ipv4Subnet: text('ipv4_subnet').notNull(),
    createdAt: createdAt(),
  },
  (t) => [unique('private_networks_slot').on(t.slot)],
);

export type PrivateNetwork = typeof privateNetworks.$inferSelect;
