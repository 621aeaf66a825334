#!/usr/bin/env node
// The `pier` command: loads each subcommand lazily, and is the only place that turns errors
// into messages and exit codes and calls process.exit.
import { defineCommand, renderUsage, runCommand, runMain } from 'citty';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CliError } from './cli-error.js';
import { CommandExit } from './command-exit.js';
import { installEsmResolveShortcut } from './esm-resolve-shortcut.js';
import { EXIT } from './exit-codes.js';
import { printError, printUsage } from './output.js';
import { checkFlags } from './unknown-flags.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

export const main = defineCommand({
  meta: { name: 'pier', version, description: 'Run containers on your own machines behind an explicit L4 edge' },
  subCommands: {
    server: () => import('./commands/server.js').then((m) => m.default),
    deploy: () => import('./commands/deploy.js').then((m) => m.default),
    build: () => import('./commands/build.js').then((m) => m.default),
    status: () => import('./commands/status.js').then((m) => m.default),
    apps: () => import('./commands/apps.js').then((m) => m.default),
    events: () => import('./commands/events.js').then((m) => m.default),
    doctor: () => import('./commands/doctor.js').then((m) => m.default),
    audit: () => import('./commands/audit.js').then((m) => m.default),
    logs: () => import('./commands/logs.js').then((m) => m.default),
    exec: () => import('./commands/exec.js').then((m) => m.default),
    'port-forward': () => import('./commands/port-forward.js').then((m) => m.default),
    connect: () => import('./commands/connect.js').then((m) => m.default),
    releases: () => import('./commands/releases.js').then((m) => m.default),
    rollback: () => import('./commands/rollback.js').then((m) => m.default),
    scale: () => import('./commands/scale.js').then((m) => m.default),
    describe: () => import('./commands/describe.js').then((m) => m.default),
    validate: () => import('./commands/validate.js').then((m) => m.default),
    tokens: () => import('./commands/tokens.js').then((m) => m.default),
    'admin-token': () => import('./commands/admin-token.js').then((m) => m.default),
    registry: () => import('./commands/registry.js').then((m) => m.default),
    login: () => import('./commands/login.js').then((m) => m.default),
    completion: () => import('./commands/completion.js').then((m) => m.default),
    edge: () => import('./commands/edge.js').then((m) => m.default),
    agent: () => import('./commands/agent.js').then((m) => m.default),
    edges: () => import('./commands/edges.js').then((m) => m.default),
    ips: () => import('./commands/ips.js').then((m) => m.default),
    certs: () => import('./commands/certs.js').then((m) => m.default),
    nodes: () => import('./commands/nodes.js').then((m) => m.default),
    volumes: () => import('./commands/volumes.js').then((m) => m.default),
    env: () => import('./commands/env.js').then((m) => m.default),
    secrets: () => import('./commands/secrets.js').then((m) => m.default),
    promote: () => import('./commands/promote.js').then((m) => m.default),
    snapshots: () => import('./commands/snapshots.js').then((m) => m.default),
  },
});

async function run(argv: string[]): Promise<number> {
  // After `--` the words belong to a remote command (`pier exec … -- df -h`), not to us.
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (argv.length === 0 || own.some((a) => a === '--help' || a === '-h') || (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-v'))) {
    await runMain(main, { rawArgs: argv, showUsage: async (cmd, parent) => printUsage(await renderUsage(cmd, parent)) });
    return EXIT.ok;
  }
  try {
    const { env } = await checkFlags(main, argv);
    // `--env NAME` on a command that does not define it: the API client reads PIER_ENV.
    if (env !== undefined) process.env.PIER_ENV = env;
    await runCommand(main, { rawArgs: argv });
    return EXIT.ok;
  } catch (err) {
    return report(err);
  }
}

function report(err: unknown): number {
  if (err instanceof CommandExit) return err.code;
  if (err instanceof CliError) {
    printError(err.code, err.message, err.hint);
    return err.exitCode;
  }
  const e = err as { name?: string; code?: string; message?: string; hint?: string; status?: number };
  if (e?.name === 'CLIError') {
    // citty's own usage errors: unknown command, missing argument.
    printError(e.code ?? 'E_USAGE', e.message ?? 'invalid usage', 'run `pier --help`');
    return EXIT.usage;
  }
  if (e?.name === 'PierError' && e.code) {
    printError(e.code, e.message ?? '', e.hint);
    return e.status !== undefined && e.status < 500 ? EXIT.usage : EXIT.error;
  }
  printError('E_INTERNAL', e?.message ?? String(err), 'this is a bug in pier; please report it with the command you ran');
  if (process.env.PIER_DEBUG) console.error(err);
  return EXIT.error;
}

// Only when run as the program: tests and docs generation import `main` to read the commands, and
// `pier completion` imports it while it runs (so no top-level await here).
const entry = process.argv[1];
if (entry !== undefined && realpathSync(entry) === fileURLToPath(import.meta.url)) {
  // Before any subcommand loads its dependencies (the API process loads drizzle-orm).
  installEsmResolveShortcut();
  // `pier … | head`: a reader that stops early ends the command quietly, as with other tools.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(EXIT.ok);
  });
  void run(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
