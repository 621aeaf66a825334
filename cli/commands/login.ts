// `pier login`: check a token against an API, then store both in the CLI config file (mode 0600)
// for the commands that follow. PIER_API_URL and PIER_TOKEN still override what is stored.
import { text } from 'node:stream/consumers';
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { checkToken } from '../api-token.js';
import { CliError } from '../cli-error.js';
import { saveClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'login', description: 'Check an API token and store it with the API URL in the CLI config file' },
  args: {
    api: { type: 'string', description: 'The API URL', default: 'http://127.0.0.1:7700', valueHint: 'URL' },
    token: { type: 'string', description: 'The token (pier_…); prefer --token-stdin, which keeps it out of the process list', valueHint: 'TOKEN' },
    'token-stdin': { type: 'boolean', description: 'Read the token from stdin', default: false },
    json: { type: 'boolean', description: 'Print { apiUrl, configFile, token } as JSON on stdout', default: false },
  },
  async run({ args }) {
    const token = args['token-stdin'] ? (await text(process.stdin)).trim() : args.token?.trim();
    if (!token) {
      throw new CliError('E_USAGE', 'no token given', { hint: 'pass --token TOKEN, or pipe it in with --token-stdin', exitCode: EXIT.usage });
    }
    let url: URL;
    try {
      url = new URL(args.api);
    } catch {
      throw new CliError('E_USAGE', `"${args.api}" is not a URL`, { hint: 'for example --api http://127.0.0.1:7700', exitCode: EXIT.usage });
    }
    const config = { apiUrl: url.href.replace(/\/+$/, ''), token: checkToken(token, args['token-stdin'] ? 'stdin' : '--token') };
    const current = await new ApiClient(config).currentToken();
    const configFile = saveClientConfig(process.env, config);
    if (args.json) return printJson({ apiUrl: config.apiUrl, configFile, token: current.token });
    const t = current.token;
    printLine(`logged in to ${config.apiUrl} with ${t.id} (${t.scope}${t.app ? ` on ${t.app}` : ''}); saved in ${configFile}`);
  },
});
