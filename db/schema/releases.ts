// Releases are immutable and numbered per app: the manifest snapshot, the image as written and
// its resolved digest, the endpoint spec, and who made it and why. Rollback copies one.
import { integer, jsonb, pgTable, text, unique } from 'drizzle-orm/pg-core';
import { createdAt, id } from './columns.js';
import { apps } from './apps.js';

export const releases = pgTable(
  'releases',
  {
    id: id(),
    appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    /** The validated manifest, as JSON (see api/manifest.ts for its type). */
    manifest: jsonb('manifest').notNull(),
    image: text('image').notNull(),
    /** Content-addressed image id (`sha256:…`): what the containers run. */
    imageId: text('image_id').notNull(),
    /** `repo@sha256:…` when known, else the image id. */
    imageDigest: text('image_digest').notNull(),
    /** Hash of manifest and digest: deploying the same pair again returns this release. */
    configHash: text('config_hash').notNull(),
    createdBy: text('created_by'),
    description: text('description').notNull().default(''),
    /** For an image Pier built from a Dockerfile: how (null for an image named in the manifest). */
    build: jsonb('build').$type<ReleaseBuild>(),
    /** Set on a rollback: the version this release copies. */
    rollbackOf: integer('rollback_of'),
    /** The secret versions it runs with (KEY → version); the values are decrypted at start. */
    secrets: jsonb('secrets').$type<Record<string, number>>().notNull().default({}),
    /** What the manifest declared for its environment (api/environment-overrides.ts), for `pier env diff` and promote. */
    declared: jsonb('declared').$type<DeclaredConfig>(),
    createdAt: createdAt(),
  },
  (t) => [unique('releases_app_version').on(t.appId, t.version)],
);

export type Release = typeof releases.$inferSelect;

export interface ReleaseBuild {
  /** sha256 of the uploaded context, read from the built image's label. */
  contextHash: string | null;
  /** Path of the Dockerfile inside the context. */
  dockerfile: string;
  target: string | null;
  /** The build arguments' names (their values are not kept here). */
  argKeys: string[];
  /** What built it: the engine's version as the image records it and the builder (releases before it: absent). */
  builder?: string | null;
}

export interface DeclaredConfig {
  /** The environment it was deployed to. */
  environment: string;
  /** The manifest before its environment's overrides. */
  base: unknown;
  /** Every `[env.NAME]` table of the manifest, as written (validated). */
  overrides: Record<string, unknown>;
  /** The override table applied (`NAME` or `preview`), or null. */
  applied: string | null;
  /** Endpoint ports a preview got from the port range (manifest port → port). */
  remappedPorts: Record<string, number>;
  /** Volumes this deploy created from a seed snapshot (api/volume-seeds.ts): volume → where from. */
  seeds?: Record<string, { from: string; snapshot: string; environment: string }>;
}
