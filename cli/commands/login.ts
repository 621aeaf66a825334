// `pier login`: check a token against an API, then store both in the CLI config file (mode 0600)
// for the commands that follow. PIER_API_URL and PIER_TOKEN still override what is stored. With
// --fingerprint it pins the API's certificate (cli/api-transport.ts), checked before the token is sent.
import { text } from 'node:stream/consumers';
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { checkToken } from '../api-token.js';
import { CliError } from '../cli-error.js';
import { saveClientConfig } from '../client-config.js';
import { parseFingerprint } from '../../api/tls/certificate-fingerprint.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printLine } from '../output.js';

export default defineCommand({
  meta: { name: 'login', description: 'Check an API token and store it with the API URL in the CLI config file' },
  args: {
    api: { type: 'string', alias: 'url', description: 'The API URL (also --url); https:// for an API off loopback', default: 'http://127.0.0.1:7700', valueHint: 'URL' },
    fingerprint: {
      type: 'string',
      description: 'Pin the API certificate by its SHA-256 fingerprint, as `pier server` printed it (SHA256:… or hex with colons); every later command checks it instead of trusting a CA',
      valueHint: 'SHA256:…',
    },
    token: { type: 'string', description: 'The token (pier_…); prefer --token-stdin, which keeps it out of the process list', valueHint: 'TOKEN' },
    'token-stdin': { type: 'boolean', description: 'Read the token from stdin', default: false },
    json: { type: 'boolean', description: 'Print { apiUrl, configFile, token, fingerprint? } as JSON on stdout', default: false },
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
    let fingerprint: string | undefined;
    if (args.fingerprint !== undefined) {
      fingerprint = parseFingerprint(args.fingerprint) ?? undefined;
      if (!fingerprint) {
        throw new CliError('E_USAGE', `"${args.fingerprint}" is not a SHA-256 fingerprint`, { hint: 'copy the value `pier server` printed: SHA256:… (base64), or 32 hex bytes with colons', exitCode: EXIT.usage });
      }
      if (url.protocol !== 'https:') {
        throw new CliError('E_USAGE', `--fingerprint pins a certificate, and ${url.href} is not https://`, { hint: 'use the https:// URL `pier server` printed', exitCode: EXIT.usage });
      }
    }
    const config = { apiUrl: url.href.replace(/\/+$/, ''), token: checkToken(token, args['token-stdin'] ? 'stdin' : '--token'), ...(fingerprint ? { fingerprint } : {}) };
    // The certificate is checked before the token is sent; a failed check stores nothing.
    const current = await new ApiClient(config).currentToken();
    const configFile = saveClientConfig(process.env, config);
    if (args.json) return printJson({ apiUrl: config.apiUrl, configFile, token: current.token, ...(fingerprint ? { fingerprint } : {}) });
    const t = current.token;
    printLine(`logged in to ${config.apiUrl} with ${t.id} (${t.scope}${t.app ? ` on ${t.app}` : ''})${fingerprint ? `, certificate pinned to ${fingerprint}` : ''}; saved in ${configFile}`);
  },
});
