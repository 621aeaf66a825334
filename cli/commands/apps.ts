// `pier apps`: the apps this token can see (or the deleted ones), and deleting one.
import { defineCommand } from 'citty';
import type { AppDeletedView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable, progress } from '../output.js';

const list = defineCommand({
  meta: { name: 'list', description: 'List apps' },
  args: {
    deleted: { type: 'boolean', description: 'List deleted apps instead (their events stay readable by id)', default: false },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { apps } = await new ApiClient(loadClientConfig(process.env)).listApps({ deleted: args.deleted });
    if (args.json) return printJson({ apps });
    if (args.deleted) return printTable(['NAME', 'ID', 'CREATED', 'DELETED'], apps.map((a) => [a.name, a.id, a.createdAt, a.deletedAt]));
    printTable(['NAME', 'RELEASE', 'CREATED'], apps.map((a) => [a.name, a.currentRelease ? `v${a.currentRelease}` : null, a.createdAt]));
  },
});

const remove = defineCommand({
  meta: {
    name: 'delete',
    description:
      "Delete an app: stop and remove its instances, free its endpoints' ports, revoke its app-bound tokens, release its addresses (they cool down once the edges stopped serving them); its events stay readable",
  },
  args: {
    app: { type: 'positional', description: 'The app to delete', required: true, valueHint: 'APP' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false },
    wait: { type: 'string', description: 'Wait this long for the containers to be gone (exit 8 if they are not; removal goes on)', default: '60', valueHint: 'SECONDS' },
    json: { type: 'boolean', description: 'Print what was deleted as JSON on stdout', default: false },
  },
  async run({ args }) {
    const app = String(args.app);
    const wait = Number(args.wait);
    if (!Number.isInteger(wait) || wait < 0 || wait > 300) {
      throw new CliError('E_USAGE', `--wait must be a whole number of seconds from 0 to 300, not "${args.wait}"`, { exitCode: EXIT.usage });
    }
    if (!args.yes) await confirm(`delete app ${app}, stop its instances and free its ports?`);
    const client = new ApiClient(loadClientConfig(process.env));
    if (wait > 0) progress(`deleting ${app}; waiting up to ${wait} s for its containers to be removed`);
    const result = await client.deleteApp(app, wait);
    if (args.json) printJson(result);
    else printLine(summary(result));
    if (result.containersRemaining !== 0) {
      const left = result.containersRemaining === null ? 'the engine did not answer about its containers' : `${result.containersRemaining} container${result.containersRemaining === 1 ? '' : 's'} not removed yet`;
      throw new CliError('E_DELETE_PENDING', `${app} is deleted, but ${left}; the server goes on removing them`, {
        hint: `\`docker ps -a --filter label=dev.pier.app=${result.app.id}\` shows what is left`,
        exitCode: EXIT.pending,
      });
    }
  },
});

function summary(r: AppDeletedView): string {
  const parts = [
    `${r.instances} instance${r.instances === 1 ? '' : 's'} stopped${r.containersRemaining === 0 ? ' and removed' : ''}`,
    r.ports.length ? `port${r.ports.length === 1 ? '' : 's'} ${r.ports.join(', ')} freed` : 'no endpoints',
    `${r.tokensRevoked} app token${r.tokensRevoked === 1 ? '' : 's'} revoked`,
    ...(r.deploymentsCancelled.length ? [`deployment ${r.deploymentsCancelled.join(', ')} cancelled`] : []),
  ];
  return `deleted ${r.app.name} (${r.app.id}): ${parts.join(', ')}\nits events stay readable: pier events --app ${r.app.id} (or --app ${r.app.name} --deleted)`;
}

export default defineCommand({
  meta: { name: 'apps', description: 'List and delete apps' },
  subCommands: { list, delete: remove },
});
