// The OpenAPI document: every route Hono has is documented (and nothing else), it validates as
// OpenAPI 3.1, it is served without a token, and it covers every route the CLI calls.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { validate } from '@readme/openapi-parser';
import { documentedRoutes } from '../../api/openapi.js';
import { createTestApi } from '../support/test-api.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The paths the CLI's sources call, with each `${…}` path segment as `{}`. */
async function cliPaths(): Promise<string[]> {
  const files = ['cli/api-client.ts', ...(await readdir(`${ROOT}cli/commands`)).map((f) => `cli/commands/${f}`)];
  const found = new Set<string>();
  for (const file of files) {
    const source = await readFile(`${ROOT}${file}`, 'utf8');
    for (const m of source.matchAll(/\/v1\/(?:[^`'"?\s$]|\$\{[^}]*\})*/g)) {
      // `${…}` after a slash is a path parameter; elsewhere it appends a query string.
      found.add(m[0].replace(/\/\$\{[^}]*\}/g, '/{}').replace(/\$\{[^}]*\}/g, ''));
    }
  }
  return [...found].sort();
}

test('the OpenAPI document', async (t) => {
  const api = await createTestApi(t);
  const res = await api.app.request('/openapi.json');
  assert.equal(res.status, 200, 'served without a token');
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };

  await t.test('documents exactly the routes the app has', () => {
    const actual = new Set(api.app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`));
    const documented = documentedRoutes().map((r) => `${r.method.toUpperCase()} ${r.path}`);
    assert.equal(new Set(documented).size, documented.length, 'each route is described once');
    assert.deepEqual([...actual].sort(), [...documented].sort(), 'a route without describeRoute(), or a description without a route');
  });

  await t.test('validates as OpenAPI 3.1', async () => {
    assert.equal(doc.openapi, '3.1.0');
    const result = await validate(structuredClone(doc) as never);
    assert.equal(result.valid, true, JSON.stringify(result));
    // The validator does check: a document without `info` is refused.
    const { info: _info, ...broken } = structuredClone(doc) as Record<string, unknown>;
    assert.equal((await validate(broken as never)).valid, false);
  });

  await t.test('covers every route the CLI calls', async () => {
    const documented = new Set(Object.keys(doc.paths).map((p) => p.replace(/\{[^}]+\}/g, '{}')));
    const used = await cliPaths();
    assert.ok(used.length >= 10, `found the CLI's paths: ${used.join(', ')}`);
    for (const path of used) assert.ok(documented.has(path), `${path} is used by the CLI and missing from /openapi.json`);
  });

  await t.test('request schemas come from the zod schemas the routes parse with', () => {
    const deploy = doc.paths['/v1/deploys']?.post as { requestBody: { content: { 'application/json': { schema: { required?: string[] } } } }; parameters: { name: string }[] };
    assert.deepEqual(deploy.requestBody.content['application/json'].schema.required, ['manifest']);
    assert.ok(deploy.parameters.some((p) => p.name === 'Idempotency-Key'));
    const apps = doc.paths['/v1/apps']?.get as { parameters: { name: string }[] };
    assert.deepEqual(apps.parameters.map((p) => p.name).sort(), ['cursor', 'deleted', 'limit']);
  });
});
