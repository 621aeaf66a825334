// Tokens in the CLI: one a header cannot carry is "invalid token" (E_TOKEN_INVALID, exit 4), not
// "cannot reach the API"; `pier edge` takes its token from a file or PIER_TOKEN and refuses it
// on the command line, where every user of the host could read it in `ps`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { runPier, startPierServer } from '../support/pier-process.js';
import { startEdgeProcess } from '../proxy/edge-process.js';

test('a token with a character no header can carry is an invalid token (exit 4), wherever it came from', async (t) => {
  const server = await startPierServer(t);
  const cases: { name: string; token: string; shown: RegExp }[] = [
    { name: 'non-ASCII', token: `${server.token}é`, shown: /a character outside ASCII \(U\+00E9\)/ },
    { name: 'a space', token: `pier_ab cd`, shown: /a space \(U\+0020\) at position 8/ },
    { name: 'a control character', token: `${server.token}\u0007`, shown: /a control character \(U\+0007\)/ },
  ];
  for (const c of cases) {
    const r = await runPier(['apps', 'list'], { ...server.env, PIER_TOKEN: c.token });
    assert.equal(r.code, 4, `${c.name}: ${r.stderr}`);
    assert.match(r.stderr, /\(E_TOKEN_INVALID\)/, c.name);
    assert.match(r.stderr, /the API token from PIER_TOKEN holds/, c.name);
    assert.match(r.stderr, c.shown, c.name);
    assert.doesNotMatch(r.stderr, /cannot reach/, c.name);
  }

  // The same from the config file.
  const configHome = join(server.dir, 'other-config');
  await mkdir(join(configHome, 'pier'), { recursive: true });
  await writeFile(join(configHome, 'pier', 'config.json'), JSON.stringify({ apiUrl: server.apiUrl, token: `${server.token}\n` }));
  const fromFile = await runPier(['status'], { ...server.env, XDG_CONFIG_HOME: configHome });
  assert.equal(fromFile.code, 4, fromFile.stderr);
  assert.match(fromFile.stderr, /the API token from .*other-config\/pier\/config\.json holds a control character \(U\+000A\)/);

  // Another header value from the command line: a usage error, not "cannot reach".
  const key = await runPier(['scale', 'web=1', '--app', 'none', '--idempotency-key', 'two words'], server.env);
  assert.equal(key.code, 2, key.stderr);
  assert.match(key.stderr, /--idempotency-key must be 1 to 200 visible ASCII characters/);

  // A well-formed token the server does not know is still E_UNAUTHENTICATED, also exit 4.
  const unknown = await runPier(['apps', 'list'], { ...server.env, PIER_TOKEN: 'pier_not-known' });
  assert.equal(unknown.code, 4);
  assert.match(unknown.stderr, /\(E_UNAUTHENTICATED\)/);
});

test('pier edge refuses --token and follows the API with a token from --token-file or PIER_TOKEN', async (t) => {
  const server = await startPierServer(t);
  const created = await runPier(['tokens', 'create', '--scope', 'edge', '--name', 'edge node', '--json'], server.env);
  assert.equal(created.code, 0, created.stderr);
  const secret = (JSON.parse(created.stdout) as { secret: string }).secret;

  const onCommandLine = await runPier(['edge', '--api', server.apiUrl, '--token', secret, '--admin-listen', '127.0.0.1:0'], server.env, { timeoutMs: 30_000 });
  assert.equal(onCommandLine.code, 2, onCommandLine.stderr);
  assert.match(onCommandLine.stderr, /--token is not accepted: the token would be visible to every user of this host in `ps`/);
  assert.match(onCommandLine.stderr, /hint: set PIER_TOKEN, or put the token in a file only you can read and pass --token-file FILE/);
  const withEquals = await runPier(['edge', '--api', server.apiUrl, `--token=${secret}`], server.env, { timeoutMs: 30_000 });
  assert.equal(withEquals.code, 2, withEquals.stderr);

  const file = join(server.dir, 'edge-token');
  await writeFile(file, `${secret}\n`, { mode: 0o600 });
  const edgeEnv = { ...server.env };
  delete edgeEnv.PIER_TOKEN;
  const edge = await startEdgeProcess(t, ['--api', server.apiUrl, '--token-file', file, '--workers', '1', '--data-dir', join(server.dir, 'edge-a')], edgeEnv);
  let version: number | null = null;
  for (let i = 0; i < 100 && version === null; i++) {
    version = (await edge.status()).version;
    if (version === null) await delay(100);
  }
  assert.ok(version !== null, `the edge got a snapshot with the token from the file\n${edge.stderr().slice(-2000)}`);
  assert.doesNotMatch(edge.stderr(), new RegExp(secret), 'the secret is not logged');

  const viaEnv = await startEdgeProcess(t, ['--api', server.apiUrl, '--workers', '1', '--data-dir', join(server.dir, 'edge-b')], { ...edgeEnv, PIER_TOKEN: secret });
  let envVersion: number | null = null;
  for (let i = 0; i < 100 && envVersion === null; i++) {
    envVersion = (await viaEnv.status()).version;
    if (envVersion === null) await delay(100);
  }
  assert.ok(envVersion !== null);

  const badFile = join(server.dir, 'bad-token');
  await writeFile(badFile, 'pier_with a space\n');
  const bad = await runPier(['edge', '--api', server.apiUrl, '--token-file', badFile, '--admin-listen', '127.0.0.1:0'], edgeEnv, { timeoutMs: 30_000 });
  assert.equal(bad.code, 4, bad.stderr);
  assert.match(bad.stderr, /\(E_TOKEN_INVALID\)/);
});
