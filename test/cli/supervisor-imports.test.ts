// The `pier server` supervisor (and `pier doctor`) load the configuration but never the database
// layer: drizzle-orm is ~100 modules, and on Node 22/24 each of its imports costs a re-parse of
// its package.json (cli/esm-resolve-shortcut.ts). Walks the static imports of the compiled files.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const STATIC_IMPORT = /\b(?:import|export)\s*[\w$*{}\s,]*?\s*from\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]/g;

/** Every package a file imports statically, directly or through Pier's own files. */
function staticPackages(entry: URL): Map<string, string> {
  const packages = new Map<string, string>();
  const seen = new Set<string>();
  const walk = (file: URL, via: string): void => {
    if (seen.has(file.href)) return;
    seen.add(file.href);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const specifier = (m[1] ?? m[2]) as string;
      if (specifier.startsWith('.')) walk(new URL(specifier, file), `${via} -> ${specifier}`);
      else if (!specifier.startsWith('node:') && !packages.has(specifier)) packages.set(specifier, via);
    }
  };
  walk(entry, entry.pathname.replace(/.*\/dist\//, ''));
  return packages;
}

const SUPERVISOR_FILES = ['../../cli/commands/server.js', '../../api/config.js', '../../api/last-resort.js', '../../cli/server-supervisor.js', '../../cli/api-child.js', '../../cli/commands/doctor.js'];

test('the supervisor and pier doctor import no drizzle-orm', () => {
  for (const file of SUPERVISOR_FILES) {
    const packages = staticPackages(new URL(file, import.meta.url));
    const drizzle = [...packages].filter(([name]) => name === 'drizzle-orm' || name.startsWith('drizzle-orm/'));
    assert.deepEqual(drizzle, [], `${file} reaches drizzle-orm`);
  }
});

test('the API does import drizzle-orm (the walk sees it)', () => {
  const packages = staticPackages(new URL('../../api/server.js', import.meta.url));
  assert.ok(packages.has('drizzle-orm'));
});
