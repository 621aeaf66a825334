// The generated docs match what generates them: the command reference in docs/cli.md, the
// OpenAPI document and the manifest's JSON Schema. PIER_UPDATE_DOCS=1 rewrites them instead:
//   npx tsc -p tsconfig.json && PIER_UPDATE_DOCS=1 node --test dist/test/docs/generated-docs.test.js
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import '../../api/app.js';
import { manifestJsonSchema } from '../../api/manifest-json-schema.js';
import { openApiDocument } from '../../api/openapi.js';
import { withCommandReference } from '../../cli/command-reference.js';
import { commandTree } from '../../cli/command-tree.js';
import { main } from '../../cli/main.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const { version } = createRequire(import.meta.url)('../../../package.json') as { version: string };
const update = process.env.PIER_UPDATE_DOCS === '1';

async function check(file: string, generated: string): Promise<void> {
  const path = `${ROOT}${file}`;
  if (update) await writeFile(path, generated);
  const committed = await readFile(path, 'utf8').catch(() => '');
  assert.ok(committed === generated, `${file} is out of date: regenerate it with PIER_UPDATE_DOCS=1 node --test dist/test/docs/generated-docs.test.js`);
}

test('docs/cli.md holds the command reference generated from the command definitions', async () => {
  const doc = await readFile(`${ROOT}docs/cli.md`, 'utf8');
  await check('docs/cli.md', withCommandReference(doc, await commandTree(main)));
});

test('docs/openapi.json is the document GET /openapi.json serves', async () => {
  await check('docs/openapi.json', `${JSON.stringify(openApiDocument(version), null, 2)}\n`);
});

test('docs/manifest.schema.json is generated from the manifest schema', async () => {
  await check('docs/manifest.schema.json', `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
});
