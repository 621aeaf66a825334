// `pier tokens create|list|revoke|rotate`: API tokens. A new token's secret is printed once; the server
// keeps only its hash. Revoking asks for confirmation on a terminal, or needs --yes.
import { defineCommand } from 'citty';
import type { TokenView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable, progress } from '../output.js';

const SCOPES = ['read', 'deploy', 'exec', 'edge', 'admin', 'connect'] as const;

const create = defineCommand({
  meta: { name: 'create', description: 'Create a token and print its secret (shown this once)' },
  args: {
    scope: { type: 'string', description: 'read | deploy | exec | edge | admin | connect (tunnels to one app: needs --app)', valueHint: 'SCOPE', required: true },
    app: { type: 'string', alias: 'a', description: 'Bind the token to this app (it sees no other)', valueHint: 'APP' },
    ttl: { type: 'string', alias: 'expires', description: 'Expire after this long: 30s, 90m, 12h, 30d, 8w (default: never; --expires is the same)', valueHint: 'DURATION' },
    env: { type: 'string', description: 'Bind the token to environments: names and * wildcards, comma-separated (e.g. "pr-*"); it is refused in any other', valueHint: 'PATTERN' },
    name: { type: 'string', description: 'A name to recognise it by', valueHint: 'NAME' },
    json: { type: 'boolean', description: 'Print { token, secret } as JSON on stdout', default: false },
  },
  async run({ args }) {
    const scope = args.scope as (typeof SCOPES)[number];
    if (!SCOPES.includes(scope)) {
      throw new CliError('E_USAGE', `"${args.scope}" is not a scope`, { hint: `use one of: ${SCOPES.join(', ')}`, exitCode: EXIT.usage });
    }
    const client = new ApiClient(loadClientConfig(process.env));
    const { token, secret } = await client.createToken({ scope, app: args.app, expiresIn: args.ttl, name: args.name, ...(args.env ? { environments: args.env } : {}) });
    if (args.json) return printJson({ token, secret });
    progress(`created ${token.id} (${describe(token)}); the secret is shown this once:`);
    printLine(secret);
  },
});

const list = defineCommand({
  meta: { name: 'list', description: 'List the tokens that are not revoked' },
  args: { json: { type: 'boolean', description: 'Print JSON on stdout', default: false } },
  async run({ args }) {
    const { tokens } = await new ApiClient(loadClientConfig(process.env)).listTokens();
    if (args.json) return printJson({ tokens });
    printTable(['ID', 'NAME', 'SCOPE', 'APP', 'CREATED', 'EXPIRES', 'LAST USED'], tokens.map((t) => [t.id, t.name, t.scope, t.app, t.createdAt, t.expiresAt, t.lastUsedAt]));
  },
});

const revoke = defineCommand({
  meta: { name: 'revoke', description: 'Revoke a token: it stops working at once' },
  args: {
    id: { type: 'positional', description: 'The token id (`pier tokens list`)', valueHint: 'ID', required: true },
    yes: { type: 'boolean', alias: 'y', description: 'Do not ask for confirmation (needed without a terminal)', default: false },
    json: { type: 'boolean', description: 'Print the revoked token as JSON on stdout', default: false },
  },
  async run({ args }) {
    if (!args.yes) await confirm(`revoke token ${args.id}?`);
    const { token } = await new ApiClient(loadClientConfig(process.env)).revokeToken(String(args.id));
    if (args.json) return printJson({ token });
    printLine(`revoked ${token.id} (${describe(token)})`);
  },
});

const rotate = defineCommand({
  meta: { name: 'rotate', description: 'Give a token a new secret (same id, scope, app and expiry); the old one stops working at once, or after --overlap' },
  args: {
    id: { type: 'positional', description: 'The token id (`pier tokens list`)', valueHint: 'ID', required: true },
    overlap: { type: 'string', description: 'Keep the old secret working this long beside the new one: 30s, 5m, 1h (at most 24h; default: none)', valueHint: 'DURATION' },
    json: { type: 'boolean', description: 'Print { token, secret } as JSON on stdout', default: false },
  },
  async run({ args }) {
    const { token, secret } = await new ApiClient(loadClientConfig(process.env)).rotateToken(String(args.id), args.overlap);
    if (args.json) return printJson({ token, secret });
    progress(`rotated ${token.id} (${describe(token)}); the old secret ${args.overlap ? `works for ${args.overlap} more` : 'no longer works'}; the new one is shown this once:`);
    printLine(secret);
  },
});

export default defineCommand({
  meta: { name: 'tokens', description: 'Manage API tokens (needs an org-wide admin token)' },
  subCommands: { create, list, revoke, rotate },
});

function describe(t: TokenView): string {
  return `${t.name}: ${t.scope}${t.app ? ` on ${t.app}` : ', all apps'}${t.expiresAt ? `, expires ${t.expiresAt}` : ''}`;
}
