// `pier edges`: the edges that report to the API, live or not: the snapshot each serves, when it
// last reported, and the endpoints it cannot serve (with the bind error), so "is it served" has
// an answer per edge.
import { defineCommand } from 'citty';
import type { EdgeView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printLine, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'edges', description: 'List the edges that report to the API: live or not, the snapshot each serves, its last report, and the endpoints it cannot serve' },
  args: {
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { edges, snapshotVersion } = await new ApiClient(loadClientConfig(process.env)).edges();
    if (args.json) return printJson({ edges, snapshotVersion });
    if (edges.length === 0) {
      printLine('no edge has reported to this API yet: nothing serves its endpoints. `pier server` runs an edge; on another host run `pier edge --api URL --token-file FILE`');
      return;
    }
    printTable(
      ['NAME', 'ID', 'LIVE', 'APPLIED', 'LAST REPORT', 'WORKERS', 'VERSION', 'SERVING', 'FAILED'],
      edges.map((e) => [e.name, e.id, e.live ? 'yes' : 'no', applied(e, snapshotVersion), `${e.lastReportAgeSeconds} s ago`, e.workers, e.version, e.endpoints.serving, e.endpoints.failed]),
    );
    const notes = edges.flatMap((e) => [
      ...e.failures.map((f) => `${e.name} cannot serve ${f.name}: ${f.message}${f.retryAt ? ` (next try ${f.retryAt})` : ''}`),
      ...(e.lastError ? [`${e.name}: last error: ${e.lastError}`] : []),
    ]);
    if (notes.length) {
      printLine();
      for (const n of notes) printLine(n);
    }
  },
});

function applied(e: EdgeView, current: number): string {
  if (e.applied === null) return 'none';
  return e.applied === current ? `${e.applied} (current)` : `${e.applied} (current is ${current})`;
}
