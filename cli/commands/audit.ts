// `pier audit`: who changed what — every deploy, rollback, scale, exec, deletion and token change,
// with the token, the client's address, the outcome and how long it took (audit.request events).
import { defineCommand } from 'citty';
import type { EventView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { loadClientConfig } from '../client-config.js';
import { printJson, printTable } from '../output.js';

export default defineCommand({
  meta: { name: 'audit', description: 'Show the audit trail: each change made through the API, with its token, source address, outcome and duration' },
  args: {
    app: { type: 'string', alias: 'a', description: "Only this app's trail: its name, or its id (app_…), which also reads a deleted app", valueHint: 'APP' },
    since: { type: 'string', description: 'Only since an age (30s, 10m, 2h, 1d) or an ISO 8601 time', valueHint: 'TIME' },
    json: { type: 'boolean', description: 'Print the events as a JSON array on stdout', default: false },
  },
  async run({ args }) {
    const client = new ApiClient(loadClientConfig(process.env));
    const collected: EventView[] = [];
    let after: number | undefined;
    for (;;) {
      const { events } = await client.allEvents({ app: args.app, type: 'audit.*', since: args.since, after, limit: 1000 });
      collected.push(...events);
      after = events.at(-1)?.id;
      if (events.length < 1000) break;
    }
    if (args.json) return printJson(collected);
    printTable(
      ['TIME', 'APP', 'KIND', 'TOKEN', 'SOURCE', 'STATUS', 'MS'],
      collected.map((e) => {
        const d = e.data as { kind?: string; token?: { name?: string | null; id?: string }; source?: string; status?: number; errorCode?: string | null; durationMs?: number };
        return [e.time, e.app, d.kind, d.token?.name ?? d.token?.id, d.source, `${d.status ?? ''}${d.errorCode ? ` ${d.errorCode}` : ''}`, d.durationMs];
      }),
    );
  },
});
