// Flags a command does not define are refused with E_UNKNOWN_FLAG (exit 2) before it runs, and
// `--env` reaches every command that acts on apps (through PIER_ENV when the command does not
// define it), but not the ones that act in no environment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defineCommand } from 'citty';
import { CliError } from '../../cli/cli-error.js';
import { EXIT } from '../../cli/exit-codes.js';
import { main } from '../../cli/main.js';
import { checkFlags } from '../../cli/unknown-flags.js';

const root = defineCommand({
  meta: { name: 'pier' },
  subCommands: {
    status: defineCommand({ args: { app: { type: 'string', alias: 'a' }, json: { type: 'boolean' } } }),
    deploy: () =>
      Promise.resolve(defineCommand({ args: { config: { type: 'string', alias: 'c' }, env: { type: 'string' }, 'dry-run': { type: 'boolean' } } })),
    exec: defineCommand({ args: { app: { type: 'string', alias: 'a' }, interactive: { type: 'boolean', alias: 'i' }, tty: { type: 'boolean', alias: 't' }, instance: { type: 'positional' } } }),
    validate: defineCommand({ args: { config: { type: 'string', alias: 'c' } } }),
    apps: defineCommand({ subCommands: { delete: defineCommand({ args: { name: { type: 'positional' }, yes: { type: 'boolean', alias: 'y' } } }) } }),
  },
});

async function refused(argv: string[]): Promise<CliError> {
  try {
    await checkFlags(root, argv);
  } catch (err) {
    assert.ok(err instanceof CliError, String(err));
    assert.equal(err.exitCode, EXIT.usage);
    return err;
  }
  assert.fail(`accepted: ${argv.join(' ')}`);
}

test('defined flags, aliases, clusters, negations, values and words after -- pass', async () => {
  for (const argv of [
    ['status', '--app', 'web', '--json'],
    ['status', '-a', 'web', '--no-json'],
    ['status', '--app=web'],
    ['status', '--app', '--looks-like-a-flag'],
    ['deploy', '-c', 'pier.toml', '--dry-run', '--dryRun'],
    ['exec', '-it', '--app', 'web', 'web-1', '--', 'ls', '-la', '--bogus'],
    ['status', '--help'],
    ['apps'],
  ]) {
    await checkFlags(root, argv);
  }
});

test('an unknown flag is refused with its name, a suggestion and the command', async () => {
  const typo = await refused(['status', '--ap', 'web']);
  assert.equal(typo.code, 'E_UNKNOWN_FLAG');
  assert.match(typo.message, /pier status has no flag --ap$/);
  assert.match(String(typo.hint), /did you mean --app\?/);
  assert.match((await refused(['apps', 'delete', 'web', '--force'])).message, /pier apps delete has no flag --force/);
  assert.match((await refused(['exec', '-itx', '--app', 'web'])).message, /no flag -x/);
  const exec = await refused(['exec', '--app', 'web', 'web-1', 'ls', '-la']);
  assert.match(exec.message, /pier exec has no flag -l/);
  assert.match(String(exec.hint), /goes after --/);
  assert.match((await refused(['deploy', '--dry-run=1', '--bogus=2'])).message, /no flag --bogus/);
});

test('--env: the command own flag, else PIER_ENV for commands acting on apps, refused where no environment applies', async () => {
  assert.deepEqual(await checkFlags(root, ['deploy', '--env', 'pr-1']), { env: undefined }, 'deploy reads its own --env');
  assert.deepEqual(await checkFlags(root, ['status', '--app', 'web', '--env', 'pr-7']), { env: 'pr-7' });
  assert.deepEqual(await checkFlags(root, ['apps', 'delete', 'web', '--env=pr-7', '--yes']), { env: 'pr-7' });
  assert.deepEqual(await checkFlags(root, ['status', '--app', 'web']), { env: undefined });
  const validate = await refused(['validate', '--env', 'pr-7']);
  assert.equal(validate.code, 'E_UNKNOWN_FLAG');
  assert.match(String(validate.hint), /acts in no environment/);
  assert.equal((await refused(['status', '--env'])).code, 'E_USAGE');
  assert.equal((await refused(['status', '--env', '--json'])).code, 'E_USAGE');
});

test("every real command's flags pass the check as its own --help lists them", async () => {
  // The real tree: a command that reads a flag citty does not know (rawArgs) would be refused.
  for (const argv of [
    ['server', '--volume-root', 'a=/x', '--ip-pool', '10.0.0.0/24', '--api-tls', 'off'],
    ['exec', '--app', 'web', '-it', 'web-1'],
    ['deploy', '-c', 'pier.toml', '--env', 'pr-42', '--ttl', '2h', '--json'],
    ['logs', '--app', 'web', '-f', '--grep', 'error'],
    ['port-forward', '--app', 'db', '0:5432'],
    ['events', '--env', 'pr-42'],
  ]) {
    await checkFlags(main, argv);
  }
});
