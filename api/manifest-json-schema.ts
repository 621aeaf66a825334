// The manifest's JSON Schema (docs/manifest.schema.json), generated from the zod schema that
// validates it, so editors can check pier.toml and the two cannot drift.
import { z } from 'zod';
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
  return {
    $schema: schema.$schema,
    $id: 'https://pier.dev/schemas/manifest.schema.json',
    title: 'pier.toml',
    description: 'A Pier app manifest (docs/manifest.md).',
    ...schema,
  };
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0s' : `${ms}ms`;
}
