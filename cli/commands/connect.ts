// `pier connect --app APP [INSTANCE] PORT`: one tunnel to the app's endpoint on PORT, on stdin and
// stdout: for `ssh -o ProxyCommand='pier connect --app APP 22'`, or a client that talks on a pipe.
// Exit 0 when both sides closed, 4 when the token may not connect, 1 when the tunnel failed.
import { defineCommand } from 'citty';
import { joinTunnel } from '../../proxy/websocket-tunnel.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { rawStdio } from '../output.js';
import { parseIdle, refusedExit } from './port-forward.js';

export default defineCommand({
  meta: { name: 'connect', description: "Pipe stdin/stdout to an app's endpoint (private ones too) through the API, e.g. as an SSH ProxyCommand: pier connect --app APP [INSTANCE] PORT" },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    port: { type: 'positional', description: "The endpoint's port; or INSTANCE then PORT (any port of that container)", valueHint: '[INSTANCE] PORT', required: true },
    'idle-timeout': { type: 'string', description: "Close after this many seconds without traffic (default: the endpoint's idle_timeout, else 900)", valueHint: 'SECONDS' },
  },
  async run({ args }) {
    const positionals = args._.map(String);
    const remote = Number(positionals.at(-1));
    const instance = positionals.length > 1 ? positionals[0] : undefined;
    if (!Number.isInteger(remote) || remote < 1 || remote > 65535 || positionals.length > 2) {
      throw new CliError('E_USAGE', `expected [INSTANCE] PORT, not "${positionals.join(' ')}"`, { hint: `e.g. pier connect --app ${args.app} 5432`, exitCode: EXIT.usage });
    }
    const idleTimeout = parseIdle(args['idle-timeout']);
    const client = new ApiClient(loadClientConfig(process.env));
    const ws = await client.openTunnel(args.app, { port: remote, instance, kind: 'connect', idleTimeout }).catch(refusedExit);
    const result = await joinTunnel(rawStdio(), ws);
    if (result.error) throw new CliError(result.error.code, result.error.message, { hint: result.error.hint, exitCode: EXIT.error });
  },
});
