// `pier snapshots`: an app's volume snapshots (list, describe, delete), with size, sha256 and expiry.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { printJson, printLine } from '../output.js';
import { formatBytes, printSnapshots } from './volumes.js';

const appArg = { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true } as const;
const jsonArg = { type: 'boolean', description: 'Print JSON on stdout', default: false } as const;
const client = () => new ApiClient(loadClientConfig(process.env));

const list = defineCommand({
  meta: { name: 'list', description: "List an app's snapshots, newest first: manual, scheduled (snapshot_every), final, pre-restore, imported; with when each expires" },
  args: { app: appArg, volume: { type: 'string', description: 'Only the snapshots of this volume', valueHint: 'NAME' }, json: jsonArg },
  async run({ args }) {
    const { snapshots } = await client().listSnapshots(args.app, args.volume);
    if (args.json) return printJson({ snapshots });
    printSnapshots(snapshots);
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'A snapshot: volume, kind, size, files, sha256, expiry' },
  args: { snapshot: { type: 'positional', description: 'The snapshot', valueHint: 'SNAPSHOT', required: true }, app: appArg, json: jsonArg },
  async run({ args }) {
    const { snapshot: s } = await client().describeSnapshot(args.app, String(args.snapshot));
    if (args.json) return printJson(s);
    printLine(`snapshot ${s.id} of volume ${s.volume} (${s.kind}, ${s.consistency}, ${s.driver})`);
    printLine(`  ${s.files} files, ${formatBytes(s.bytes)}, sha256 ${s.sha256}`);
    printLine(`  taken ${s.createdAt}; ${s.expiresAt ? `expires ${s.expiresAt}` : 'kept until deleted'}`);
  },
});

const remove = defineCommand({
  meta: { name: 'delete', description: 'Delete a snapshot' },
  args: { snapshot: { type: 'positional', description: 'The snapshot', valueHint: 'SNAPSHOT', required: true }, app: appArg, yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false }, json: jsonArg },
  async run({ args }) {
    if (!args.yes) await confirm(`delete snapshot ${args.snapshot}?`);
    const { snapshot: s } = await client().deleteSnapshot(args.app, String(args.snapshot));
    if (args.json) return printJson(s);
    printLine(`deleted snapshot ${s.id}`);
  },
});

export default defineCommand({
  meta: { name: 'snapshots', description: 'Snapshots of volumes: list, describe, delete' },
  subCommands: { list, describe, delete: remove },
});
