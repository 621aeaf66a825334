// `[env.NAME]` and `[env.preview]` in pier.toml: what an environment may change of the manifest
// (instance counts, env values, endpoint ports, what a new volume is seeded from, a preview's TTL). The image and [build] are not
// among them: every environment runs the same bytes, which is what keeps staging's parity strict.
// In TOML these tables sit inside `[env]`: a table value there is an override, a string a variable.
import { z } from 'zod';
import type { Manifest } from './manifest.js';

const varName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name');

/** "90m", "2h", "3d" → milliseconds (a TTL). */
export const ttlSchema = z.string().regex(/^\d+(m|h|d)$/, 'must be a duration like "90m", "2h" or "3d"');

/** A volume's seed: "empty", or a snapshot by environment, volume and `@latest` / `@snap_…`, or by id. */
export const seedSourceSchema = z
  .string()
  .regex(
    /^(empty|snapshot:(snap_[a-z0-9]+|[a-z][a-z0-9-]{0,39}\/[a-z][a-z0-9-]{0,39}@(latest|snap_[a-z0-9]+)))$/,
    'must be "empty", "snapshot:ENV/VOLUME@latest", "snapshot:ENV/VOLUME@SNAPSHOT_ID" or "snapshot:SNAPSHOT_ID"',
  );

export const overrideSchema = z
  .object({
    /** Only for previews: how long after its last deploy the preview lives. */
    ttl: ttlSchema.optional(),
    /** Env values; a string written directly in the table is one too (`LOG_LEVEL = "debug"`). */
    env: z.record(varName, z.string()).optional(),
    processes: z.record(z.string(), z.object({ count: z.number().int().min(0).max(100).optional(), env: z.record(varName, z.string()).optional() }).strict()).optional(),
    /** Endpoint ports: the manifest's port → the port in this environment, e.g. { "7000" = 17000 }. */
    ports: z.record(z.string().regex(/^\d{1,5}$/, 'must be a port of the manifest'), z.number().int().min(1).max(65535)).optional(),
    /**
     * What a volume starts with when a deploy to this environment creates it (api/volume-seeds.ts):
     * `from = "snapshot:staging/data@latest"` (or `@snap_…`, or `snapshot:snap_…`), or "empty".
     */
    volumes: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be the name of a [[volumes]] entry'), z.object({ from: seedSourceSchema }).strict()).optional(),
  })
  .strict();

export type EnvOverride = z.infer<typeof overrideSchema>;

/** What cannot be overridden, and why (reported at the key's position). */
const FIXED: Record<string, string> = {
  image: 'the image cannot be overridden per environment: every environment runs the same digest (that is what keeps parity strict)',
  build: '[build] cannot be overridden per environment: every environment runs the same digest (that is what keeps parity strict)',
  app: 'the app name cannot be overridden per environment: the app is the same in every environment',
};

export interface SplitManifest {
  doc: unknown;
  overrides: Record<string, EnvOverride>;
  issues: { path: (string | number)[]; message: string }[];
}

/** Takes the `[env.NAME]` tables out of the document, validated; the rest is the manifest. */
export function splitOverrides(doc: unknown): SplitManifest {
  if (!isRecord(doc) || !isRecord(doc.env)) return { doc, overrides: {}, issues: [] };
  const vars: Record<string, unknown> = {};
  const overrides: Record<string, EnvOverride> = {};
  const issues: SplitManifest['issues'] = [];
  for (const [key, value] of Object.entries(doc.env)) {
    if (!isRecord(value)) {
      vars[key] = value;
      continue;
    }
    if (!/^[a-z][a-z0-9-]{0,39}$/.test(key)) {
      issues.push({ path: ['env', key], message: 'an [env.NAME] table names an environment: a-z, 0-9 and "-", starting with a letter' });
      continue;
    }
    let fixed = false;
    for (const k of Object.keys(value)) {
      if (FIXED[k]) {
        issues.push({ path: ['env', key, k], message: FIXED[k] });
        fixed = true;
      }
    }
    if (fixed) continue;
    // `[env.staging] LOG_LEVEL = "debug"` reads as the environment's env values: a string beside
    // the reserved keys is one.
    const strings = Object.fromEntries(Object.entries(value).filter(([k, v]) => typeof v === 'string' && k !== 'ttl'));
    const rest = Object.fromEntries(Object.entries(value).filter(([k, v]) => !(typeof v === 'string' && k !== 'ttl')));
    const parsed = overrideSchema.safeParse(Object.keys(strings).length ? { ...rest, env: { ...(isRecord(rest.env) ? rest.env : {}), ...strings } } : value);
    if (parsed.success) overrides[key] = parsed.data;
    else for (const i of parsed.error.issues) issues.push({ path: ['env', key, ...(i.path as (string | number)[]), ...(i.code === 'unrecognized_keys' ? [i.keys[0] ?? ''] : [])], message: i.message.replace(/^Invalid input: /, '') });
  }
  return { doc: { ...doc, env: vars }, overrides, issues };
}

/** Which override table applies: the environment's own, else `preview` for a preview. */
export function overrideFor(overrides: Record<string, EnvOverride>, environment: string, preview: boolean): string | null {
  if (overrides[environment]) return environment;
  if (preview && overrides.preview) return 'preview';
  return null;
}

/** The manifest as it runs in the environment: the override's counts, env values and ports applied. */
export function applyOverride(manifest: Manifest, override: EnvOverride | undefined): Manifest {
  if (!override) return manifest;
  const processes = Object.fromEntries(
    Object.entries(manifest.processes).map(([name, p]) => {
      const o = override.processes?.[name];
      return [name, o ? { ...p, ...(o.count !== undefined ? { count: o.count } : {}), env: { ...p.env, ...o.env } } : p];
    }),
  );
  const endpoints = manifest.endpoints.map((e) => {
    const port = override.ports?.[String(e.port)];
    return port !== undefined ? { ...e, port } : e;
  });
  return { ...manifest, env: { ...manifest.env, ...override.env }, processes, endpoints };
}

/** Milliseconds of a TTL ("2h"). */
export function ttlMs(ttl: string): number {
  const m = /^(\d+)(m|h|d)$/.exec(ttl);
  if (!m) throw new Error(`not a TTL: ${ttl}`);
  return Number(m[1]) * ({ m: 60_000, h: 3_600_000, d: 86_400_000 } as Record<string, number>)[m[2] as string]!;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
