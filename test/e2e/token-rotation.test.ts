// Rotating tokens with the real server and CLI: `pier tokens rotate` keeps the id and scope and
// stops the old secret at once (or after --overlap); `pier admin-token rotate` replaces the admin
// token on disk while the server runs, the old secret working through the overlap, and the CLI
// config following it; `pier tokens list` shows an admin every token of the org.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenView } from '../../api/views.js';
import { runPier, startPierServer } from '../support/pier-process.js';

test('tokens rotate with and without an overlap, and the admin token on disk rotates while the server runs', async (t) => {
  const server = await startPierServer(t);
  const as = (token: string) => runPier(['apps', 'list', '--json'], { ...server.env, PIER_TOKEN: token });
  const created = JSON.parse((await runPier(['tokens', 'create', '--scope', 'read', '--name', 'ci', '--json'], server.env)).stdout) as { token: TokenView; secret: string };

  const once = await runPier(['tokens', 'rotate', created.token.id, '--json'], server.env);
  assert.equal(once.code, 0, once.stderr);
  const first = JSON.parse(once.stdout) as { token: TokenView; secret: string };
  assert.equal(first.token.id, created.token.id);
  assert.equal(first.token.scope, 'read');
  assert.notEqual(first.secret, created.secret);
  assert.equal((await as(created.secret)).code, 4, 'the old secret stops at once');
  assert.equal((await as(first.secret)).code, 0);

  const overlapped = JSON.parse((await runPier(['tokens', 'rotate', created.token.id, '--overlap', '1h', '--json'], server.env)).stdout) as { secret: string };
  assert.equal((await as(first.secret)).code, 0, 'the old secret works during the overlap');
  assert.equal((await as(overlapped.secret)).code, 0);
  assert.equal((await runPier(['tokens', 'revoke', created.token.id, '--yes'], server.env)).code, 0);
  assert.equal((await as(first.secret)).code, 4, 'revoking ends the overlap too');
  assert.equal((await as(overlapped.secret)).code, 4);
  const bad = await runPier(['tokens', 'rotate', created.token.id], server.env);
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /E_TOKEN_NOT_FOUND/);

  // The admin token on disk, while the server runs: the file and the CLI config follow it.
  const file = join(server.dir, 'data', 'admin-token');
  const old = (await readFile(file, 'utf8')).trim();
  const rotated = await runPier(['admin-token', 'rotate', '--overlap', '2s', '--json'], server.env);
  assert.equal(rotated.code, 0, rotated.stderr);
  assert.equal((JSON.parse(rotated.stdout) as { cliConfig: string }).cliConfig, 'updated');
  const fresh = (await readFile(file, 'utf8')).trim();
  assert.notEqual(fresh, old);
  assert.equal((await as(old)).code, 0, 'the old admin secret works through the overlap');
  assert.equal((await runPier(['apps', 'list'], server.env)).code, 0, 'the CLI config holds the new secret');
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal((await as(old)).code, 4, 'and stops after it');
  assert.equal((await as(fresh)).code, 0);
  const list = JSON.parse((await runPier(['tokens', 'list', '--json'], server.env)).stdout) as { tokens: TokenView[] };
  assert.ok(list.tokens.some((x) => x.name === 'admin (local)'));
});
