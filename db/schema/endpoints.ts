// An L4 endpoint: a public port served by the edge on its IP bindings, forwarded to a target
// port of an app's process group, with an optional PROXY protocol header.
import { boolean, integer, jsonb, pgTable, text, unique } from 'drizzle-orm/pg-core';
import { createdAt, id, updatedAt } from './columns.js';
import { apps } from './apps.js';

export const PROXY_PROTOCOLS = ['none', 'v1', 'v2'] as const;
export const TLS_MODES = ['none', 'passthrough', 'terminate'] as const;
/** "private": never bound by the edge; reachable only through Pier (`pier port-forward`, `pier connect`). */
export const ENDPOINT_ACCESS = ['public', 'private'] as const;

export const endpoints = pgTable(
  'endpoints',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    process: text('process').notNull(),
    port: integer('port').notNull(),
    targetPort: integer('target_port').notNull(),
    protocol: text('protocol').notNull().default('tcp'),
    proxyProtocol: text('proxy_protocol', { enum: PROXY_PROTOCOLS }).notNull().default('none'),
    tls: text('tls', { enum: TLS_MODES }).notNull().default('none'),
    sni: jsonb('sni').$type<string[]>().notNull().default([]),
    /** Passthrough: take hellos without a name, or with a name no endpoint on the port claims. */
    sniDefault: boolean('sni_default').notNull().default(false),
    /** PROXY v2 TLVs to add: authority, unique-id, crc32c. */
    proxyProtocolTlvs: jsonb('proxy_protocol_tlvs').$type<('authority' | 'unique-id' | 'crc32c')[]>().notNull().default([]),
    /** Addresses to bind; empty means the edge's shared IPv4 and IPv6 addresses. */
    bindings: jsonb('bindings').$type<string[]>().notNull().default([]),
    allow: jsonb('allow').$type<string[]>().notNull().default([]),
    deny: jsonb('deny').$type<string[]>().notNull().default([]),
    maxConnections: integer('max_connections'),
    maxConnectionsPerClient: integer('max_connections_per_client'),
    idleTimeoutMs: integer('idle_timeout_ms'),
    access: text('access', { enum: ENDPOINT_ACCESS }).notNull().default('public'),
    /** tls = "terminate": ALPN list, client CA (mTLS); and the port-80 redirect (docs/tls.md). */
    tlsOptions: jsonb('tls_options').$type<{ alpn?: string[]; clientCa?: string; httpRedirect?: boolean; acmeNames?: string[] }>().notNull().default({}),
    /** Bumped when the settings the edge applies to the listener change; edges echo it in reports. */
    revision: integer('revision').notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('endpoints_app_port').on(t.appId, t.port)],
);

export type Endpoint = typeof endpoints.$inferSelect;
