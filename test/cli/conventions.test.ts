// CLI conventions that need no server: --version, help without colour off a terminal, no prompt
// without a terminal (exit 2 and a hint), usage errors exit 2, and completion scripts made from
// the command definitions.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { commandTree, leafCommands } from '../../cli/command-tree.js';
import { main } from '../../cli/main.js';
import { PIER_BIN, runPier } from '../support/pier-process.js';

const exec = promisify(execFile);
const env: NodeJS.ProcessEnv = { ...process.env, PIER_API_URL: 'http://127.0.0.1:1', PIER_TOKEN: 'pier_unused' };
// citty colours its usage unless one of these is set: prove we strip it ourselves.
delete env.NO_COLOR;
delete env.CI;
delete env.TEST;

test('pier --version prints the version', async () => {
  const r = await runPier(['--version'], env);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('help off a terminal has no colour codes', async () => {
  for (const args of [['--help'], ['deploy', '--help'], ['tokens', 'create', '--help']]) {
    const r = await runPier(args, env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /USAGE/);
    assert.doesNotMatch(r.stdout, /\x1b\[/, `pier ${args.join(' ')}`);
  }
});

test('an unknown command or a missing required flag is a usage error (exit 2)', async () => {
  assert.equal((await runPier(['frobnicate'], env)).code, 2);
  const r = await runPier(['tokens', 'create'], env);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stderr, /\x1b\[/);
});

test('tokens revoke without a terminal does not prompt: exit 2 with a hint to pass --yes', async () => {
  const r = await runPier(['tokens', 'revoke', 'tok_x'], env, { timeoutMs: 20_000 });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /E_CONFIRMATION_REQUIRED/);
  assert.match(r.stderr, /hint: pass --yes/);
  assert.equal(r.stdout, '');
});

test('login without a token is a usage error', async () => {
  const r = await runPier(['login', '--api', 'http://127.0.0.1:1'], env);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--token-stdin/);
});

test('completion scripts name every command and flag', async (t) => {
  const tree = await commandTree(main);
  const bash = (await runPier(['completion', 'bash'], env)).stdout;
  const zsh = (await runPier(['completion', 'zsh'], env)).stdout;
  const fish = (await runPier(['completion', 'fish'], env)).stdout;
  for (const cmd of leafCommands(tree)) {
    assert.ok(bash.includes(`"${cmd.path.join('/')}")`), `bash completes ${cmd.path.join(' ')}`);
    assert.ok(fish.includes(`-a ${cmd.path[cmd.path.length - 1]} `), `fish completes ${cmd.path.join(' ')}`);
    for (const a of cmd.args.filter((x) => x.type !== 'positional')) assert.ok(fish.includes(`-l ${a.name}`), `fish completes ${cmd.path.join(' ')} --${a.name}`);
  }
  assert.match(zsh, /^#compdef pier/);
  assert.equal((await runPier(['completion', 'tcsh'], env)).code, 2);

  await t.test('the bash script completes subcommands and flags in bash', async () => {
    const script = `source <(${JSON.stringify(process.execPath)} ${JSON.stringify(PIER_BIN)} completion bash)
COMP_WORDS=(pier tokens cr); COMP_CWORD=2; _pier; echo "\${COMPREPLY[*]}"
COMP_WORDS=(pier deploy --app x --js); COMP_CWORD=4; _pier; echo "\${COMPREPLY[*]}"`;
    const { stdout } = await exec('bash', ['-c', script], { env, timeout: 20_000 });
    assert.equal(stdout, 'create\n--json\n');
  });
});
