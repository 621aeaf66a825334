// The manifest's [[private]] tables: accepted and defaulted, and each mistake reported at its
// line and column with what to do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseManifest, type ManifestProblem } from '../../../api/manifest.js';
import { PierError } from '../../../api/pier-error.js';
import { effectiveCheck } from '../../../api/scheduler/readiness-check.js';
import { privatePorts } from '../../../api/private/private-spec.js';

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
  assert.deepEqual(m.private, [{ process: 'web', ports: [8080, 9090], protocol: 'tcp' }]);
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
    { path: 'private[2].process', message: 'process web has another [[private]] entry for tcp: list all its tcp ports in one', line: 19, column: 11 },
    { path: 'private[2].ports[1]', message: 'port 80 is listed twice', line: 20, column: 14 },
    { path: 'private[2]', message: 'unknown key "port" — did you mean "ports"?', line: 21, column: 1 },
  ]);
});

test('a group offers UDP ports in an entry of its own (protocol = "udp"); they get no TCP readiness check; a bad protocol is refused', () => {
  const m = parseManifest(`${base}\n[[private]]\nprocess = "web"\nports = [8080]\n\n[[private]]\nprocess = "web"\nprotocol = "udp"\nports = [5353, 8080]\n`);
  assert.deepEqual(privatePorts(m, 'web'), { tcp: [8080], udp: [5353, 8080] });
  // A manifest stored before `protocol` existed: TCP.
  assert.deepEqual(privatePorts({ private: [{ process: 'web', ports: [9000] }] }, 'web'), { tcp: [9000], udp: [] });
  const check = effectiveCheck(m, 'web');
  assert.deepEqual(check?.type === 'listen' ? check.targets : null, [{ port: 8080, endpoints: [] }]);
  const udpOnly = parseManifest(`${base}\n[[private]]\nprocess = "web"\nprotocol = "udp"\nports = [5353]\n`);
  assert.equal(effectiveCheck(udpOnly, 'web'), null);
  const bad = problems(`${base}\n[[private]]\nprocess = "web"\nprotocol = "sctp"\nports = [5353]\n`);
  assert.equal(bad.length, 1);
  assert.equal(bad[0]?.path, 'private[0].protocol');
  assert.match(bad[0]?.message ?? '', /tcp.*udp/);
});
