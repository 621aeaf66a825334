// `pier apps`: the apps this token can see.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printTable } from '../output.js';

const list = defineCommand({
  meta: { name: 'list', description: 'List apps' },
  args: { json: { type: 'boolean', description: 'Print JSON on stdout', default: false } },
  async run({ args }) {
    const { apps } = await new ApiClient(loadClientConfig(process.env)).listApps();
    if (args.json) return printJson({ apps });
    printTable(['NAME', 'RELEASE', 'CREATED'], apps.map((a) => [a.name, a.currentRelease ? `v${a.currentRelease}` : null, a.createdAt]));
  },
});

export default defineCommand({
  meta: { name: 'apps', description: 'Manage apps' },
  subCommands: { list },
});
