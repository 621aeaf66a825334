// `pier registry gc`: garbage-collect Pier's image registry now (the server also does it every
// --registry-gc-interval). Lists each image it removes, why, and the bytes freed; --dry-run only
// lists. Needs the admin token `pier server` wrote.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printLine, printTable, progress } from '../output.js';

const gc = defineCommand({
  meta: { name: 'gc', description: "Delete the registry images past those Pier keeps (per app: the newest --registry-keep, the current and running releases) and reclaim their storage" },
  args: {
    'dry-run': { type: 'boolean', description: 'Only list what would be removed', default: false },
    json: { type: 'boolean', description: 'Print the result as JSON on stdout: { registry, dryRun, removed[], kept, bytesFreed, blobsCollected }', default: false },
  },
  async run({ args }) {
    const client = new ApiClient(loadClientConfig(process.env));
    if (!args['dry-run'] && !args.json) progress('collecting registry garbage (builds wait until it is done)…');
    const result = await client.registryGc(args['dry-run']);
    if (args.json) return printJson(result);
    if (result.removed.length) {
      printTable(
        ['IMAGE', 'REASON', 'RELEASES', 'SIZE'],
        result.removed.map((r) => [r.image, r.reason, r.releases.join(', ') || '-', formatBytes(r.bytes)]),
      );
    }
    const verb = result.dryRun ? 'would remove' : 'removed';
    const freed = result.dryRun
      ? `; up to ${formatBytes(result.removed.reduce((sum, r) => sum + r.bytes, 0))} named by them (layers shared with kept images stay)`
      : result.bytesFreed !== null
        ? `; freed ${formatBytes(result.bytesFreed)}`
        : '; the external registry reclaims their storage with its own garbage collection';
    printLine(`${verb} ${result.removed.length} image${result.removed.length === 1 ? '' : 's'}, kept ${result.kept}${result.removed.length ? freed : ''}`);
  },
});

export default defineCommand({
  meta: { name: 'registry', description: "Pier's image registry: garbage collection" },
  subCommands: { gc },
});

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}
