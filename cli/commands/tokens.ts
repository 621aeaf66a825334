// `pier tokens create|list|revoke`: API tokens. A new token's secret is printed once; the server
// keeps only its hash. Revoking asks for confirmation on a terminal, or needs --yes.
import { defineCommand } from 'citty';
import type { TokenView } from '../../api/views.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { confirm } from '../confirm.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine, printTable, progress } from '../output.js';

const SCOPES = ['read', 'deploy', 'exec', 'edge', 'admin'] as const;

const create = defineCommand({
  meta: { name: 'create', description: 'Create a token and print its secret (shown this once)' },
  args: {
    scope: { type: 'string', description: 'read | deploy | exec | edge | admin', valueHint: 'SCOPE', required: true },
    app: { type: 'string', alias: 'a', description: 'Bind the token to this app (it sees no other)', valueHint: 'APP' },
    expires: { type: 'string', description: 'Expire after this long: 90m, 12h, 30d, 8w (default: never)', valueHint: 'DURATION' },
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
    const { token, secret } = await client.createToken({ scope, app: args.app, expiresIn: args.expires, name: args.name, ...(args.env ? { environments: args.env } : {}) });
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

export default defineCommand({
  meta: { name: 'tokens', description: 'Manage API tokens (needs an org-wide admin token)' },
  subCommands: { create, list, revoke },
});

function describe(t: TokenView): string {
  return `${t.name}: ${t.scope}${t.app ? ` on ${t.app}` : ', all apps'}${t.expiresAt ? `, expires ${t.expiresAt}` : ''}`;
}
