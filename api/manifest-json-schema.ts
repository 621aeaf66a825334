// The manifest's JSON Schema (docs/manifest.schema.json), generated from the zod schema that
// validates it, so editors can check pier.toml and the two cannot drift. The `[env.NAME]` override
// tables are taken out of `[env]` before that schema runs (api/environment-overrides.ts), so their
// schema is added to `env` here, from the override's own zod schema.
import { z } from 'zod';
import { overrideSchema } from './environment-overrides.js';
import { manifestSchema } from './manifest.js';

const DURATION_PATTERN = '^\\d+(ms|s|m|h)$';

export function manifestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(manifestSchema, {
    io: 'input',
    override(ctx) {
      const s = ctx.jsonSchema as { type?: string; pattern?: string; default?: unknown; description?: string };
      const def = ctx.zodSchema._zod.def as { type: string; defaultValue?: unknown };
      // Durations are written as strings ("5s"); zod knows their defaults only in milliseconds.
      if (s.type === 'string' && s.pattern === DURATION_PATTERN) {
        s.description = 'A duration: a whole number and a unit (ms, s, m, h), e.g. "500ms", "5s", "2m".';
        if (def.type === 'default' && typeof def.defaultValue === 'number') s.default = formatDuration(def.defaultValue);
      }
    },
  });
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (properties?.env) properties.env = withOverrides(properties.env);
  return {
    $schema: schema.$schema,
    $id: 'https://pier.dev/schemas/manifest.schema.json',
    title: 'pier.toml',
    description: 'A Pier app manifest (docs/manifest.md).',
    ...schema,
  };
}

/**
 * `[env]` holds variables (strings) and `[env.NAME]` override tables: an object there is an
 * override, whose own strings are that environment's values (`[env.staging] LOG_LEVEL = "debug"`);
 * the image, [build] and the app name cannot be overridden.
 */
function withOverrides(env: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _, ...override } = z.toJSONSchema(overrideSchema, { io: 'input' }) as Record<string, unknown>;
  const table = {
    ...override,
    description: 'An [env.NAME] table: what the environment NAME (or every preview, [env.preview]) changes of the manifest (docs/manifest.md, "Environments").',
    additionalProperties: { type: 'string', description: "An env value of this environment (as in the table's env)." },
    not: { anyOf: ['image', 'build', 'app'].map((key) => ({ required: [key] })) },
  };
  return {
    ...env,
    description: 'Env values of every process (KEY = "value"), and [env.NAME] tables overriding the manifest per environment.',
    propertyNames: { type: 'string', pattern: '^([A-Za-z_][A-Za-z0-9_]*|[a-z][a-z0-9-]{0,39})$' },
    additionalProperties: { anyOf: [{ type: 'string' }, table] },
  };
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0s' : `${ms}ms`;
}
