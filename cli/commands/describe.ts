// `pier describe app|release|instance|deployment|endpoint ID`: desired versus observed, the reasons,
// health, recent events; for an instance also its last log lines.
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

const KINDS = ['app', 'release', 'instance', 'deployment', 'endpoint'] as const;

export default defineCommand({
  meta: { name: 'describe', description: 'Explain an app, release, instance, deployment or endpoint: what should run, what runs, and why they differ' },
  args: {
    kind: { type: 'positional', description: 'app | release | instance | deployment | endpoint', required: true },
    id: { type: 'positional', description: 'Its name or id; a release is APP/VERSION and an endpoint APP/PORT (or VERSION, PORT with --app)', required: true },
    app: { type: 'string', alias: 'a', description: 'The app (for a release given as VERSION or an endpoint given as PORT)', valueHint: 'APP' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const kind = String(args.kind);
    if (!(KINDS as readonly string[]).includes(kind)) {
      throw new CliError('E_USAGE', `cannot describe "${kind}"`, { hint: `use one of: ${KINDS.join(', ')}`, exitCode: EXIT.usage });
    }
    const id = encodeURIComponent(String(args.id));
    let path: string;
    if (kind === 'app') path = `/v1/apps/${id}/describe`;
    else if (kind === 'instance') path = `/v1/instances/${id}`;
    else if (kind === 'deployment') path = `/v1/deployments/${id}/describe`;
    else if (kind === 'release') {
      const [app, version] = String(args.id).includes('/') ? String(args.id).split('/') : [args.app, String(args.id).replace(/^v/, '')];
      if (!app || !/^\d+$/.test(version ?? '')) {
        throw new CliError('E_USAGE', `cannot read release "${args.id}"`, { hint: 'use APP/VERSION, e.g. site/3, or VERSION with --app', exitCode: EXIT.usage });
      }
      path = `/v1/apps/${encodeURIComponent(app)}/releases/${version}`;
    } else {
      const [app, port] = String(args.id).includes('/') ? String(args.id).split('/') : [args.app, String(args.id)];
      if (!app || !/^\d+$/.test(port ?? '')) {
        throw new CliError('E_USAGE', `cannot read endpoint "${args.id}"`, { hint: 'use APP/PORT, e.g. echo/9000, or PORT with --app', exitCode: EXIT.usage });
      }
      path = `/v1/apps/${encodeURIComponent(app)}/endpoints/${port}`;
    }
    const doc = await new ApiClient(loadClientConfig(process.env)).describe(path);
    if (args.json) return printJson(doc);
    render(doc);
  },
});

/** A readable, indented rendering of the document: keys in order, arrays one item per line. */
function render(value: unknown, indent = ''): void {
  if (Array.isArray(value)) {
    if (value.length === 0) printLine(`${indent}(none)`);
    for (const item of value) {
      if (item && typeof item === 'object') {
        printLine(`${indent}-`);
        render(item, `${indent}  `);
      } else printLine(`${indent}- ${String(item)}`);
    }
    return;
  }
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v === null || v === undefined) continue;
    if (typeof v === 'object' && (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0)) {
      printLine(`${indent}${key}:`);
      render(v, `${indent}  `);
    } else if (typeof v !== 'object') {
      printLine(`${indent}${key}: ${String(v)}`);
    }
  }
}
