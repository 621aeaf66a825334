// Dedicated addresses given out from the server's pools (api/ip-service.ts). One row per address
// ever handed out: the primary key is the uniqueness constraint that makes two allocations of one
// address impossible, whatever races. A released row keeps its address with no app until
// `reusable_at` (the cool-down, so clients and caches let go before another app gets it), and is
// then taken again by the next allocation. An address an endpoint bound when its app was deleted
// first waits for the edges to stop serving it (`unbind`, api/ip-unbinder.ts).
import { index, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { time } from './columns.js';
import { apps } from './apps.js';

export const IP_FAMILIES = ['ipv4', 'ipv6'] as const;
export type IpFamily = (typeof IP_FAMILIES)[number];

export const ipAddresses = pgTable(
  'ip_addresses',
  {
    /** The address in its canonical text form (RFC 5952 for IPv6). */
    address: text('address').primaryKey(),
    family: text('family', { enum: IP_FAMILIES }).notNull(),
    /** The pool (CIDR) it came from, as the server was configured. */
    pool: text('pool').notNull(),
    /** The owner while allocated; null once released. */
    orgId: text('org_id'),
    appId: text('app_id').references(() => apps.id, { onDelete: 'set null' }),
    allocatedAt: time('allocated_at').notNull().defaultNow(),
    releasedAt: time('released_at'),
    /** A released address is not allocated again before this time. */
    reusableAt: time('reusable_at'),
    /**
     * Released with its app while endpoints bound it: the app, and the edges connected then, each
     * of which must report that it no longer binds the address before the cool-down starts (until
     * `by`, then the cool-down starts anyway; api/ip-unbinder.ts). Null when nothing is awaited.
     * While set, reusable_at is the latest it can be (`by` plus the cool-down), so nothing
     * allocates the address meanwhile, even when no unbinder runs.
     */
    unbind: jsonb('unbind').$type<IpUnbind>(),
  },
  (t) => [index('ip_addresses_app_id').on(t.appId), index('ip_addresses_pool').on(t.pool)],
);

export interface IpUnbind {
  app: { id: string; name: string };
  edges: { id: string; name: string }[];
  /** ISO time the wait ends. */
  by: string;
}

export type IpAddress = typeof ipAddresses.$inferSelect;
