// The manifest's [[private]] tables: accepted and defaulted, and each mistake reported at its
// line and column with what to do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest, type ManifestProblem } from '../../../api/manifest.js';
import { PierError } from '../../../api/pier-error.js';
import { effectiveCheck } from '../../../api/scheduler/readiness-check.js';

const base = `app = "db"
image = "local/db:1"

[processes.web]
cmd = ["serve"]

[processes.worker]
cmd = ["work"]
`;

function problems(text: string): ManifestProblem[] {
  try {
    parseManifest(text);
  } catch (err) {
    assert.ok(err instanceof PierError && err.code === 'E_MANIFEST_INVALID', String(err));
    return (err.details as ManifestProblem[]).map(({ path, message, line, column }) => ({ path, message, line, column }));
  }
  assert.fail('the manifest was accepted');
}

test('[[private]] says which ports a process offers; none by default; offered ports get the implicit readiness check', () => {
  assert.deepEqual(parseManifest(base).private, []);
  const m = parseManifest(`${base}\n[[private]]\nprocess = "web"\nports = [8080, 9090]\n`);
  assert.deepEqual(m.private, [{ process: 'web', ports: [8080, 9090] }]);
  const check = effectiveCheck(m, 'web');
  assert.deepEqual(check?.type === 'listen' ? check.targets : null, [{ port: 8080, endpoints: [] }, { port: 9090, endpoints: [] }]);
  assert.equal(effectiveCheck(m, 'worker'), null);
});

test('a [[private]] entry naming no process, listed twice, without ports or with a bad key is refused at its position', () => {
  const text = `${base}
[[private]]
process = "api"
ports = [8080]

[[private]]
process = "web"
ports = []

[[private]]
process = "web"
ports = [80, 80]
port = 1
`;
  assert.deepEqual(problems(text), [
    { path: 'private[0].process', message: 'names no process; define [processes.api] or use one of: web, worker', line: 11, column: 11 },
    { path: 'private[1].ports', message: 'must list at least one port the process listens on, e.g. ports = [8080]', line: 16, column: 9 },
    { path: 'private[2].process', message: 'process web has another [[private]] entry: list all its ports in one', line: 19, column: 11 },
    { path: 'private[2].ports[1]', message: 'port 80 is listed twice', line: 20, column: 14 },
    { path: 'private[2]', message: 'unknown key "port" — did you mean "ports"?', line: 21, column: 1 },
  ]);
});
