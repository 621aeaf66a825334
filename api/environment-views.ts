// What the API answers about environments: the resource, the deploy's summary for CI (where its
// endpoints are served and when it expires) and a parity report.
import { z } from 'zod';
import type { Environment } from '../db/schema/index.js';

export const environmentViewSchema = z.object({
  name: z.string(),
  kind: z.enum(['persistent', 'preview']),
  protected: z.boolean(),
  base: z.string().nullable(),
  expiresAt: z.string().nullable(),
  branch: z.string().nullable(),
  commit: z.string().nullable(),
  pr: z.number().nullable(),
  createdAt: z.string(),
});
export type EnvironmentView = z.infer<typeof environmentViewSchema>;

export const environmentEndpointViewSchema = z.object({
  app: z.string(),
  process: z.string(),
  /** The public port in this environment (a preview's comes from the preview range). */
  port: z.number(),
  /** The port the manifest names. */
  manifestPort: z.number(),
  target: z.number(),
  /** `address:port` (IPv6 in brackets) for each address it is served on. */
  addresses: z.array(z.string()),
  /**
   * The same, one entry per address: a preview's endpoint on an address of its own keeps the
   * manifest's port there (kind "dedicated"), on the shared one a port from the preview range.
   */
  bind: z.array(z.object({ address: z.string(), port: z.number(), family: z.enum(['ipv4', 'ipv6']), kind: z.enum(['shared', 'dedicated']) })),
});
export type EnvironmentEndpointView = z.infer<typeof environmentEndpointViewSchema>;

export const environmentDetailViewSchema = environmentViewSchema.extend({
  apps: z.array(z.object({ name: z.string(), release: z.number().nullable(), digest: z.string().nullable() })),
  endpoints: z.array(environmentEndpointViewSchema),
});

export const differenceViewSchema = z.object({
  app: z.string(),
  field: z.string(),
  a: z.unknown(),
  b: z.unknown(),
  kind: z.enum(['declared', 'drift']),
  why: z.string(),
});

export const diffViewSchema = z.object({
  a: z.string(),
  b: z.string(),
  /** True when some difference is not declared by an override. */
  drift: z.boolean(),
  differences: z.array(differenceViewSchema),
});

export const secretViewSchema = z.object({ key: z.string(), version: z.number(), digest: z.string(), updatedAt: z.string() });

export function environmentView(e: Environment): EnvironmentView {
  return {
    name: e.name,
    kind: e.kind,
    protected: e.protected,
    base: e.base,
    expiresAt: e.expiresAt?.toISOString() ?? null,
    branch: e.branch,
    commit: e.commit,
    pr: e.pr,
    createdAt: e.createdAt.toISOString(),
  };
}
