// `pier validate`: no server, no deploy; exit 0 with a summary, or exit 2 with every problem at
// `file:line:column` (on stderr, or as JSON on stdout with --json).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runPier } from '../support/pier-process.js';

const valid = `app = "echo"
image = "local/echo:1"

[processes.echo]
cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]
count = 2

[[endpoints]]
process = "echo"
port = 9000
target = 8080
`;

/** A typo on line 3: "proccesses" for "processes". */
const typo = `app = "echo"
image = "local/echo:1"
[proccesses.echo]
count = 2
`;

test('pier validate', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-validate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'pier.toml'), valid);
  await writeFile(join(dir, 'typo.toml'), typo);
  // No API anywhere: validate must not need one.
  const env = { ...process.env, PIER_API_URL: 'http://127.0.0.1:1', PIER_TOKEN: 'pier_unused', NO_COLOR: '1' };

  await t.test('a valid manifest exits 0 with a one-line summary', async () => {
    const r = await runPier(['validate'], env, { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'pier.toml: valid — app echo, 1 process (echo×2), endpoint on 9000\n');
  });

  await t.test('a typo in a key on line 3 exits 2, pointing at line 3 and suggesting the key', async () => {
    const r = await runPier(['validate', '-c', 'typo.toml'], env, { cwd: dir });
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^typo\.toml:3:2: unknown key "proccesses" — did you mean "processes"\?$/m);
    assert.match(r.stderr, /E_MANIFEST_INVALID/);
    assert.doesNotMatch(r.stderr, /is required/, 'the missing "processes" is explained by the typo, not reported twice');
  });

  await t.test('with --json, stdout is { valid: false, problems } and nothing else', async () => {
    const r = await runPier(['validate', '-c', 'typo.toml', '--json'], env, { cwd: dir });
    assert.equal(r.code, 2);
    const out = JSON.parse(r.stdout) as { valid: boolean; problems: { line: number; column: number; message: string }[] };
    assert.equal(out.valid, false);
    assert.deepEqual(out.problems, [{ path: '', message: 'unknown key "proccesses" — did you mean "processes"?', line: 3, column: 2 }]);
  });

  await t.test('with --json, a valid manifest is { valid: true, manifest } with its defaults', async () => {
    const r = await runPier(['validate', '--json'], env, { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { valid: boolean; manifest: { endpoints: { proxy_protocol: string }[] } };
    assert.equal(out.valid, true);
    assert.equal(out.manifest.endpoints[0]?.proxy_protocol, 'none');
  });

  await t.test('a missing file exits 2', async () => {
    const r = await runPier(['validate', '-c', 'nope.toml'], env, { cwd: dir });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /E_MANIFEST_UNREADABLE/);
  });
});
