// `pier events`: every event the token may see (apps' and, with an org-wide token, the platform's
// own), or one app's; oldest first; `-f` keeps following new ones.
import { defineCommand } from 'citty';
import type { EventView } from '../../api/views.js';
import { ApiClient, type EventsQuery } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: {
    name: 'events',
    description: 'Show events: deploys, instances started, exited (with why), stopped, and system events (engine, database, edges, servers) — of every app the token sees (a token bound to environments: their apps and environment events, no system events), or of one app',
  },
  args: {
    app: { type: 'string', alias: 'a', description: 'Only this app: its name, or its id (app_…), which also reads a deleted app', valueHint: 'APP' },
    deleted: { type: 'boolean', description: 'With --app: the most recently deleted app of that name', default: false },
    type: { type: 'string', alias: 't', description: 'Only this type (deploy.succeeded), or a prefix (runtime.*)', valueHint: 'TYPE' },
    system: { type: 'boolean', description: 'Only system events (no app): engine, database, edges, servers', default: false },
    since: { type: 'string', description: 'Only events since a time: an ISO 8601 time, or an age such as 30s, 10m, 2h, 1d', valueHint: 'TIME' },
    follow: { type: 'boolean', alias: 'f', description: 'Keep printing new events until interrupted', default: false },
    after: { type: 'string', description: 'Only events after this event id', valueHint: 'ID' },
    json: { type: 'boolean', description: 'Print JSON: an array, or one object per line with -f', default: false },
  },
  async run({ args }) {
    const client = new ApiClient(loadClientConfig(process.env));
    let after = args.after === undefined ? undefined : Number(args.after);
    if (after !== undefined && !(Number.isInteger(after) && after >= 0)) {
      throw new CliError('E_USAGE', `--after must be an event id (a whole number), not "${args.after}"`, { exitCode: EXIT.usage });
    }
    if (args.deleted && !args.app) throw new CliError('E_USAGE', '--deleted needs --app: it reads the events of a deleted app', { exitCode: EXIT.usage });
    if (args.follow && args.deleted) {
      throw new CliError('E_USAGE', '--follow and --deleted do not go together: a deleted app has no new events to wait for', { exitCode: EXIT.usage });
    }
    if (args.system && args.app) throw new CliError('E_USAGE', '--system and --app do not go together: system events belong to no app', { exitCode: EXIT.usage });
    const query: EventsQuery = { app: args.app, type: args.type, system: args.system, since: args.since };
    const print = (e: EventView) => {
      if (args.json) printLine(JSON.stringify(e));
      else if (args.app) printLine(`${e.time}  ${e.type.padEnd(18)} ${e.message}`);
      else printLine(`${e.time}  ${(e.app || '(system)').padEnd(14)} ${e.type.padEnd(20)} ${e.message}`);
    };
    if (args.follow) {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      try {
        for await (const e of client.followAllEvents(query, after, abort.signal)) print(e);
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
      return;
    }
    const collected: EventView[] = [];
    for (;;) {
      const { events } =
        args.deleted && args.app
          ? await client.events(args.app, { ...(after === undefined ? {} : { after }), deleted: true })
          : await client.allEvents({ ...query, after, limit: 1000 });
      for (const e of events) {
        after = e.id;
        if (args.json) collected.push(e);
        else print(e);
      }
      if (events.length < (args.deleted ? 100 : 1000)) break;
    }
    if (args.json) printJson(collected);
  },
});
