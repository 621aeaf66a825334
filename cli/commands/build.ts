// `pier build`: build the image of a manifest's [build] on the server and push it to Pier's
// registry, without deploying; prints the pinned image (`host/org/app@sha256:…`).
import { readFile } from 'node:fs/promises';
import { defineCommand } from 'citty';
import { parseManifest } from '../../api/manifest.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printLine } from '../output.js';
import { runBuild } from '../run-build.js';

export default defineCommand({
  meta: { name: 'build', description: "Build the manifest's [build] image on the server and push it, without deploying; prints the pinned image (exit 3 when the build fails)" },
  args: {
    config: { type: 'string', alias: 'c', description: 'Manifest file (the build context is relative to its folder)', default: 'pier.toml', valueHint: 'FILE' },
    json: { type: 'boolean', description: 'Print each build event as a JSON line on stdout, the last one {"type":"built","image",…}', default: false },
  },
  async run({ args }) {
    const text = await readFile(args.config, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliError('E_MANIFEST_UNREADABLE', `cannot read ${args.config}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, {
        hint: 'run this in the folder that holds pier.toml, or pass -c FILE',
        exitCode: EXIT.usage,
      });
    });
    const manifest = parseManifest(text, args.config);
    if (!manifest.build) {
      throw new CliError('E_NOTHING_TO_BUILD', `${args.config} names an image and has no [build] table`, {
        hint: 'add [build] (context = ".") in place of image to build from a Dockerfile; docs/manifest.md#build',
        exitCode: EXIT.usage,
      });
    }
    const client = new ApiClient(loadClientConfig(process.env));
    const built = await runBuild(client, {
      app: manifest.app,
      build: manifest.build,
      manifestFile: args.config,
      jsonLine: args.json ? (event) => printLine(JSON.stringify(event)) : undefined,
    });
    if (!args.json) printLine(built.image);
  },
});
