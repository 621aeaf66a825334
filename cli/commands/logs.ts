// `pier logs`: what an app's instances wrote, merged by time and tagged with instance and release;
// `-f` keeps following (new instances included) until interrupted.
import { defineCommand } from 'citty';
import type { LogLineView } from '../../api/views.js';
import { ApiClient, type LogsQuery } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'logs', description: "Show what an app's instances wrote, running and recently stopped ones, oldest first" },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    follow: { type: 'boolean', alias: 'f', description: 'Keep printing new lines until interrupted', default: false },
    process: { type: 'string', alias: 'p', description: 'Only this process group', valueHint: 'NAME' },
    instance: { type: 'string', description: 'Only this instance', valueHint: 'ID' },
    since: { type: 'string', description: 'Only lines since a time ago (30s, 10m, 2h, 1d) or an ISO time', valueHint: 'WHEN' },
    grep: { type: 'string', description: 'Only lines matching this regular expression', valueHint: 'RE' },
    tail: { type: 'string', alias: 'n', description: 'The last N lines (default 200; 50 before following)', valueHint: 'N' },
    json: { type: 'boolean', description: 'Print one JSON object per line: time, instance, process, release, stream, line', default: false },
  },
  async run({ args }) {
    const tail = args.tail === undefined ? undefined : Number(args.tail);
    if (tail !== undefined && !(Number.isInteger(tail) && tail >= 0)) {
      throw new CliError('E_USAGE', `--tail must be a whole number of lines, not "${args.tail}"`, { exitCode: EXIT.usage });
    }
    const client = new ApiClient(loadClientConfig(process.env));
    const query: LogsQuery = { process: args.process, instance: args.instance, since: args.since, grep: args.grep, tail };
    const print = (l: LogLineView) => printLine(args.json ? JSON.stringify(l) : formatLine(l));
    if (!args.follow) {
      for (const line of (await client.logs(args.app, query)).lines) print(line);
      return;
    }
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    try {
      for await (const line of client.followLogs(args.app, query, abort.signal)) print(line);
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  },
});

/** `TIME INSTANCE vN | line`; stderr lines have `!` in place of `|`. */
export function formatLine(l: LogLineView): string {
  return `${l.time} ${l.instance} v${l.release} ${l.stream === 'stderr' ? '!' : '|'} ${l.line}`;
}
