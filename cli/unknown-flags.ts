// Flags a command does not define are refused before it runs. citty passes them through silently,
// so `pier status --env pr-7` used to show production's apps as if the flag had been read (and
// `pier apps delete web --env pr-7` would have deleted production's). `--env NAME` is accepted by
// every command that talks to the API about apps: one that does not define it itself reads
// PIER_ENV, which the caller sets from the returned value.
import type { ArgsDef, CommandDef } from 'citty';
import { closestKey } from '../api/closest-key.js';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

type Resolvable<T> = T | Promise<T> | (() => T | Promise<T>);

async function resolve<T>(value: Resolvable<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | Promise<T>)() : await value;
}

const camel = (s: string): string => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Flags a command refuses itself with a better message (`pier edge --token`: a secret in `ps`). */
const REFUSED_BY_COMMAND: Record<string, string[]> = { edge: ['token'], agent: ['token'] };

/** Commands that act in no environment: `--env` is refused there like any unknown flag. */
const NO_ENVIRONMENT = new Set(['server', 'edge', 'agent', 'validate', 'completion', 'login', 'admin-token', 'doctor']);

/**
 * Throws a usage error (E_UNKNOWN_FLAG) for the first flag in `argv` the command it names does not
 * define; returns the `--env` value for a command that takes it through PIER_ENV.
 */
export async function checkFlags(root: CommandDef, argv: string[]): Promise<{ env: string | undefined }> {
  const own = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  // The command the words name: follow subcommands while the next plain word is one.
  let command = root;
  const path: string[] = [];
  for (const word of own) {
    if (word.startsWith('-')) continue;
    const subs = command.subCommands ? await resolve(command.subCommands) : undefined;
    const next = subs?.[word];
    if (next === undefined) break;
    command = await resolve(next as Resolvable<CommandDef>);
    path.push(word);
  }
  if (command.subCommands) return { env: undefined }; // a group: citty reports the missing or unknown subcommand
  const args: ArgsDef = command.args ? await resolve(command.args) : {};
  const globalEnv = !('env' in args) && path.length > 0 && !NO_ENVIRONMENT.has(path[0] as string);
  const long = new Map<string, string>(); // spelling -> type
  const short = new Map<string, string>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === 'positional') continue;
    for (const spelling of [name, kebab(name), camel(name)]) long.set(spelling, def.type ?? 'string');
    if (def.type === 'boolean') long.set(`no-${kebab(name)}`, 'boolean');
    const alias = (def as { alias?: string | string[] }).alias;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    for (const a of aliases) (a.length === 1 ? short : long).set(a, def.type ?? 'string');
  }
  long.set('help', 'boolean');
  short.set('h', 'boolean');
  if (globalEnv) long.set('env', 'string');
  for (const flag of REFUSED_BY_COMMAND[path.join(' ')] ?? []) long.set(flag, 'string');
  let env: string | undefined;
  const name = ['pier', ...path].join(' ');
  const refuse = (flag: string, known: string | undefined): never => {
    const env = flag === '--env' || flag.startsWith('--env=');
    throw new CliError('E_UNKNOWN_FLAG', `${name} has no flag ${flag.split('=')[0]}`, {
      hint: env
        ? `${name} acts in no environment`
        : path[0] === 'exec'
          ? `the command to run goes after --: ${name} --app APP INSTANCE -- CMD ARGS…`
          : `${known ? `did you mean --${known}? ` : ''}\`${name} --help\` lists its flags`,
      exitCode: EXIT.usage,
    });
  };
  for (let i = 0; i < own.length; i++) {
    const word = own[i] as string;
    if (word === '-' || !word.startsWith('-') || /^-\d/.test(word)) continue;
    if (word.startsWith('--')) {
      const flag = word.slice(2).split('=')[0] as string;
      const type = long.get(flag);
      if (type === undefined) refuse(word, closestKey(flag, [...long.keys()].filter((k) => k === kebab(k))));
      if (type === 'boolean' || word.includes('=')) {
        if (globalEnv && flag === 'env') env = word.slice('--env='.length);
        continue;
      }
      // The next word is this flag's value, whatever it looks like.
      if (globalEnv && flag === 'env') env = own[i + 1] ?? '';
      i++;
      continue;
    }
    // -a VALUE, or a cluster of one-letter booleans (-it).
    const letters = word.slice(1).split('=')[0] as string;
    for (const [n, letter] of [...letters].entries()) {
      const type = short.get(letter);
      if (type === undefined) refuse(`-${letter}`, undefined);
      if (type !== 'boolean' && n === letters.length - 1 && !word.includes('=')) i++;
    }
  }
  if (globalEnv && env !== undefined && !/^[a-z0-9][a-z0-9-]*$/i.test(env)) {
    throw new CliError('E_USAGE', `--env needs an environment name, got ${JSON.stringify(env)}`, { hint: 'e.g. --env pr-42', exitCode: EXIT.usage });
  }
  return { env };
}
