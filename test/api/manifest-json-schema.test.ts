// The generated manifest JSON Schema covers `[env.NAME]` override tables: an editor checking
// pier.toml against docs/manifest.schema.json accepts every key an override may hold (and the
// environment names, which are not variable names), and rejects image / build / app in one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { overrideSchema } from '../../api/environment-overrides.js';
import { manifestJsonSchema } from '../../api/manifest-json-schema.js';

interface Json {
  [key: string]: unknown;
}

test('the schema of [env] takes variables and [env.NAME] tables with every key an override may hold', () => {
  const env = (manifestJsonSchema().properties as Record<string, Json>).env!;
  const names = new RegExp((env.propertyNames as { pattern: string }).pattern);
  for (const ok of ['LOG_LEVEL', 'staging', 'pr-42', 'preview']) assert.ok(names.test(ok), ok);
  assert.ok(!names.test('PR 42'));
  const [variable, table] = (env.additionalProperties as { anyOf: Json[] }).anyOf as [Json, Json];
  assert.equal(variable.type, 'string');
  assert.equal(table.type, 'object');
  assert.deepEqual(Object.keys(table.properties as Json).sort(), Object.keys(overrideSchema.shape).sort());
  const seed = new RegExp(((table.properties as Record<string, Json>).volumes!.additionalProperties as { properties: { from: { pattern: string } } }).properties.from.pattern);
  for (const ok of ['empty', 'snapshot:staging/data@latest', 'snapshot:staging/data@snap_abc123', 'snapshot:snap_abc123']) assert.ok(seed.test(ok), ok);
  assert.ok(!seed.test('staging/data'));
  assert.deepEqual(((table.not as Json).anyOf as { required: string[] }[]).map((r) => r.required[0]), ['image', 'build', 'app']);
});
