// `pier ips`: addresses as resources. list (shared and dedicated), allocate a dedicated one to an
// app, describe one, release one. An app's endpoints bind its dedicated addresses from its next
// deploy (docs/guide-own-addresses.md).
import { defineCommand } from 'citty';
import type { IpView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable, warn } from '../output.js';

const familyArgs = {
  v4: { type: 'boolean', description: 'IPv4', default: false },
  v6: { type: 'boolean', description: 'IPv6', default: false },
} as const;

function familyOf(args: { v4: boolean; v6: boolean }, required: boolean): 'ipv4' | 'ipv6' | undefined {
  if (args.v4 && args.v6) throw new CliError('E_USAGE', 'pass --v4 or --v6, not both', { exitCode: EXIT.usage });
  if (args.v4) return 'ipv4';
  if (args.v6) return 'ipv6';
  if (required) throw new CliError('E_USAGE', 'say which family: --v4 or --v6', { hint: 'e.g. `pier ips allocate --app web --v4`', exitCode: EXIT.usage });
  return undefined;
}

const list = defineCommand({
  meta: { name: 'list', description: "List the edge's shared addresses and your apps' dedicated ones" },
  args: {
    ...familyArgs,
    shared: { type: 'boolean', description: 'Only the shared addresses (--no-shared: only dedicated ones)' },
    app: { type: 'string', description: "Only this app's dedicated addresses", valueHint: 'APP' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const shared = typeof args.shared === 'boolean' ? args.shared : undefined;
    const { ips, pools } = await new ApiClient(loadClientConfig(process.env)).listIps({ family: familyOf(args, false), shared, app: args.app });
    if (args.json) return printJson({ ips, pools });
    printTable(['ADDRESS', 'FAMILY', 'KIND', 'APP', 'POOL', 'SINCE'], ips.map((ip) => [ip.address, ip.family, ip.kind, ip.app, ip.pool, ip.allocatedAt]));
    printLine();
    if (pools.length === 0) printLine('no pools: the server gives no dedicated addresses (start it with --ip-pool CIDR)');
    else printTable(['POOL', 'FAMILY', 'SIZE', 'ALLOCATED', 'EDGE CAN BIND'], pools.map((p) => [p.cidr, p.family, p.size, p.allocated, p.bindProblem === null ? 'yes' : 'no']));
    for (const p of pools.filter((x) => x.bindProblem !== null)) warn(`pool ${p.cidr}: the edge cannot bind it: ${p.bindProblem}`);
  },
});

const allocate = defineCommand({
  meta: { name: 'allocate', description: "Give an app a dedicated address from the server's pools (one per family; again: the same one); its endpoints bind it from its next deploy" },
  args: {
    app: { type: 'string', description: 'The app', required: true, valueHint: 'APP' },
    ...familyArgs,
    json: { type: 'boolean', description: 'Print JSON on stdout ({ ip: { address, … }, created })', default: false },
  },
  async run({ args }) {
    const family = familyOf(args, true) as 'ipv4' | 'ipv6';
    const result = await new ApiClient(loadClientConfig(process.env)).allocateIp(String(args.app), family);
    if (args.json) return printJson({ ...result, address: result.ip.address });
    printLine(
      result.created
        ? `allocated ${result.ip.address} (${family}, pool ${result.ip.pool}) to ${args.app}; deploy ${args.app} again to serve its endpoints on it`
        : `${args.app} already has ${result.ip.address} (${family}); nothing allocated`,
    );
  },
});

const describe = defineCommand({
  meta: { name: 'describe', description: 'Show one address: its app, pool, state (releasing: waiting for the edges to stop serving it) and cool-down, and the endpoints that bind it' },
  args: {
    address: { type: 'positional', description: 'The address', required: true, valueHint: 'ADDRESS' },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const { ip } = await new ApiClient(loadClientConfig(process.env)).describeIp(String(args.address));
    if (args.json) return printJson({ ip });
    const lines: [string, string | null][] = [
      ['Address', ip.address],
      ['Family', ip.family],
      ['Kind', ip.kind],
      ['State', state(ip)],
      ['App', ip.app],
      ['Pool', ip.pool],
      ['Allocated', ip.allocatedAt],
      ['Released', ip.releasedAt],
      ['Endpoints', ip.endpoints.length ? ip.endpoints.map((e) => `${e.app}:${e.port}`).join(', ') : ip.kind === 'shared' ? 'every endpoint without a dedicated address' : 'none'],
    ];
    for (const [k, v] of lines) if (v !== null) printLine(`${`${k}:`.padEnd(11)}${v}`);
  },
});

const release = defineCommand({
  meta: { name: 'release', description: 'Release a dedicated address (refused while an endpoint binds it); it cools down before another app gets it' },
  args: {
    address: { type: 'positional', description: 'The address', required: true, valueHint: 'ADDRESS' },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask (required without a terminal)', default: false },
    json: { type: 'boolean', description: 'Print JSON on stdout', default: false },
  },
  async run({ args }) {
    const address = String(args.address);
    if (!args.yes) await confirm(`release ${address}? no app gets it back before its cool-down ends`);
    const { ip } = await new ApiClient(loadClientConfig(process.env)).releaseIp(address);
    if (args.json) return printJson({ ip });
    printLine(`released ${ip.address}; it cools down until ${ip.reusableAt}`);
  },
});

function state(ip: IpView): string {
  if (ip.state === 'cooling') return `cooling down (reusable from ${ip.reusableAt})`;
  if (ip.state === 'releasing') return `releasing: waiting for edge${ip.awaitingEdges.length === 1 ? '' : 's'} ${ip.awaitingEdges.join(', ')} to stop serving it, then the cool-down (reusable by ${ip.reusableAt} at the latest)`;
  return ip.state;
}

export default defineCommand({
  meta: { name: 'ips', description: 'List, allocate, describe and release addresses (shared, and dedicated per app)' },
  subCommands: { list, allocate, describe, release },
});
