// `pier rollback [VERSION]`: a new release copying an old one's manifest and exact image.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { checkOutcome, followDeployment, tellServed } from '../follow-deployment.js';
import { idempotencyKey, idempotencyKeyArg } from '../idempotency-key.js';
import { printJson, printLine, progress } from '../output.js';

export default defineCommand({
  meta: { name: 'rollback', description: 'Roll back to an earlier release (default: the last one that ran healthy) and wait' },
  args: {
    version: { type: 'positional', description: 'The release to copy, e.g. 3 or v3', required: false },
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    message: { type: 'string', alias: 'm', description: 'Why (kept with the new release)' },
    detach: { type: 'boolean', description: 'Return once accepted; do not wait', default: false },
    json: { type: 'boolean', description: 'Print the deployment as JSON on stdout', default: false },
    'idempotency-key': idempotencyKeyArg,
  },
  async run({ args }) {
    let version: number | undefined;
    if (args.version !== undefined) {
      version = Number(String(args.version).replace(/^v/, ''));
      if (!Number.isInteger(version) || version < 1) {
        throw new CliError('E_USAGE', `"${args.version}" is not a release version`, { hint: `use a number such as 3 (see \`pier releases --app ${args.app}\`)`, exitCode: EXIT.usage });
      }
    }
    const client = new ApiClient(loadClientConfig(process.env));
    const result = await client.rollback(args.app, { ...(version === undefined ? {} : { version }), description: args.message ?? '' }, idempotencyKey(args['idempotency-key']));
    progress(`rolling back ${result.app.name}: release v${result.release.version} runs ${result.release.imageDigest} (${result.release.description})`);
    const final = args.detach ? result.deployment : await followDeployment(client, args.app, result.deployment, 600_000);
    if (args.json) printJson(final);
    else if (final.state === 'succeeded') printLine(`${args.app} v${final.release} is running`);
    if (final.state === 'succeeded') await tellServed(client, args.app, args.json);
    checkOutcome(final, args.detach);
  },
});
