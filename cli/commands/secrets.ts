// `pier secrets`: an app's secrets in one environment. set / unset make a new release of the
// running one; list shows names, versions and digests (never values); copy brings named keys of
// the same app over from another environment (a preview starts with none).
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import { CliError } from '../cli-error.js';
import { clientIn, envArg } from '../environment-arg.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable } from '../output.js';

interface Changed {
  changed: string[];
  release: { version: number } | null;
}

const json = { type: 'boolean', description: 'Print JSON on stdout', default: false } as const;
const app = { type: 'string', description: 'The app', required: true, valueHint: 'APP' } as const;
const path = (name: string) => `/v1/apps/${encodeURIComponent(name)}/secrets`;

const list = defineCommand({
  meta: { name: 'list', description: "List the app's secrets: names, versions and digests (values are never shown)" },
  args: { app, env: envArg, json },
  async run({ args }) {
    const { secrets } = await clientIn(args.env).call<{ secrets: { key: string; version: number; digest: string; updatedAt: string }[] }>('GET', path(String(args.app)));
    if (args.json) return printJson({ secrets });
    if (!secrets.length) return printLine(`${args.app} has no secrets in this environment`);
    printTable(['KEY', 'VERSION', 'DIGEST', 'UPDATED'], secrets.map((s) => [s.key, s.version, s.digest, s.updatedAt]));
  },
});

const set = defineCommand({
  meta: { name: 'set', description: 'Set secrets (KEY=VALUE, or KEY=@FILE to read the value from a file; - reads KEY=VALUE lines from stdin); a change rolls out as a new release' },
  args: { pairs: { type: 'positional', description: 'KEY=VALUE …', required: true, valueHint: 'KEY=VALUE' }, app, env: envArg, json },
  async run({ args }) {
    const values: Record<string, string> = {};
    for (const pair of await pairsOf(args._)) {
      const at = pair.indexOf('=');
      if (at <= 0) throw new CliError('E_USAGE', `"${pair.split('=')[0]?.slice(0, 40)}" is not KEY=VALUE`, { hint: 'e.g. pier secrets set --app web DATABASE_URL=postgres://…', exitCode: EXIT.usage });
      const value = pair.slice(at + 1);
      values[pair.slice(0, at)] = value.startsWith('@') ? (await readFile(value.slice(1), 'utf8')).replace(/\n$/, '') : value;
    }
    report(await clientIn(args.env).call<Changed>('POST', path(String(args.app)), { secrets: values }), args.json, 'set');
  },
});

const unset = defineCommand({
  meta: { name: 'unset', description: 'Remove secrets; a change rolls out as a new release' },
  args: { keys: { type: 'positional', description: 'KEY …', required: true, valueHint: 'KEY' }, app, env: envArg, json },
  async run({ args }) {
    const keys = args._.map(String);
    report(await clientIn(args.env).call<Changed>('POST', path(String(args.app)), { secrets: Object.fromEntries(keys.map((k) => [k, null])) }), args.json, 'unset');
  },
});

const copy = defineCommand({
  meta: { name: 'copy', description: 'Copy named secrets of the app from one environment to another (each key is named: nothing is copied wholesale)' },
  args: {
    keys: { type: 'positional', description: 'KEY …', required: true, valueHint: 'KEY' },
    app,
    from: { type: 'string', description: 'The environment to copy from', required: true, valueHint: 'ENV' },
    to: { type: 'string', description: 'The environment to copy to (default: $PIER_ENV, else production)', valueHint: 'ENV' },
    json,
  },
  async run({ args }) {
    report(await clientIn(args.to).call<Changed>('POST', `${path(String(args.app))}/copy`, { from: args.from, keys: args._.map(String) }), args.json, 'copied');
  },
});

async function pairsOf(args: string[]): Promise<string[]> {
  if (args.length === 1 && args[0] === '-') {
    let text = '';
    for await (const chunk of process.stdin) text += String(chunk);
    return text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  }
  return args.map(String);
}

function report(result: Changed, json: boolean, verb: string): void {
  if (json) return printJson(result);
  if (!result.changed.length) return printLine('nothing changed');
  printLine(`${verb} ${result.changed.join(', ')}${result.release ? `; rolling out release v${result.release.version}` : '; they apply from the next deploy'}`);
}

export default defineCommand({
  meta: { name: 'secrets', description: 'Secrets per app and environment: set, unset, list (never values), copy' },
  subCommands: { list, set, unset, copy },
});
