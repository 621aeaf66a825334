// `pier scale web=3 worker=1 --app A`: set instance counts; idempotent.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { idempotencyKey, idempotencyKeyArg } from '../idempotency-key.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'scale', description: 'Set how many instances of each process run (kept across deploys)' },
  args: {
    counts: { type: 'positional', description: 'PROCESS=COUNT pairs, e.g. web=3 worker=1', required: true },
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
    'idempotency-key': idempotencyKeyArg,
  },
  async run({ args }) {
    const pairs = (args._ as string[]).filter((a) => a.includes('='));
    if (pairs.length === 0) throw usage(String(args.counts));
    const counts: Record<string, number> = {};
    for (const pair of pairs) {
      const m = /^([a-z][a-z0-9-]*)=(\d+)$/.exec(pair);
      if (!m) throw usage(pair);
      counts[m[1] as string] = Number(m[2]);
    }
    const result = await new ApiClient(loadClientConfig(process.env)).scale(args.app, counts, idempotencyKey(args['idempotency-key']));
    if (args.json) return printJson(result);
    printLine(`${result.app}: ${Object.entries(result.scale).map(([p, n]) => `${p}=${n}`).join(' ')}${result.changed ? '' : ' (unchanged)'}`);
  },
});

function usage(got: string): CliError {
  return new CliError('E_USAGE', `cannot read "${got}" as PROCESS=COUNT`, { hint: 'for example: pier scale web=3 worker=1 --app APP', exitCode: EXIT.usage });
}
