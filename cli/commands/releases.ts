// `pier releases --app A`: the app's releases, newest first, with their image digests.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'releases', description: "List an app's releases: version, image, digest, when and why" },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { releases } = await new ApiClient(loadClientConfig(process.env)).releases(args.app);
    if (args.json) return printJson({ releases });
    printTable(
      ['VERSION', 'CURRENT', 'IMAGE', 'DIGEST', 'CREATED', 'DESCRIPTION'],
      releases.map((r) => [`v${r.version}`, r.current ? '*' : '', r.image, r.imageDigest, r.createdAt, r.description]),
    );
  },
});
