// `pier events`: an app's events, oldest first; `-f` keeps following new ones.
import { defineCommand } from 'citty';
import type { EventView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'events', description: "Show an app's events: deploys, instances started, exited (with why), stopped" },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app: its name, or its id (app_…), which also reads a deleted app', valueHint: 'APP', required: true },
    deleted: { type: 'boolean', description: 'The most recently deleted app of that name', default: false },
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
    const print = (e: EventView) => {
      if (args.json) printLine(JSON.stringify(e));
      else printLine(`${e.time}  ${e.type.padEnd(18)} ${e.message}`);
    };
    if (args.follow && args.deleted) {
      throw new CliError('E_USAGE', '--follow and --deleted do not go together: a deleted app has no new events to wait for', { exitCode: EXIT.usage });
    }
    if (args.follow) {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      try {
        for await (const e of client.followEvents(args.app, after, abort.signal)) print(e);
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
      return;
    }
    const collected: EventView[] = [];
    for (;;) {
      const { events } = await client.events(args.app, { ...(after === undefined ? {} : { after }), deleted: args.deleted });
      for (const e of events) {
        after = e.id;
        if (args.json) collected.push(e);
        else print(e);
      }
      if (events.length < 100) break;
    }
    if (args.json) printJson(collected);
  },
});
