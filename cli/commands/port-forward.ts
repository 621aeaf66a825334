// `pier port-forward --app APP [INSTANCE] LOCAL:REMOTE`: listens on LOCAL (loopback unless --address
// says otherwise) and carries each accepted connection over its own tunnel through the API to the
// app's endpoint on port REMOTE, private ones included. The token's right is checked before it
// listens: refused (no `connect` right, or an app it may not see) exits 4. It runs until stopped.
import net from 'node:net';
import { defineCommand } from 'citty';
import { joinTunnel, reset } from '../../proxy/websocket-tunnel.js';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { progress, warn } from '../output.js';
import { REFUSED_CODES } from '../tunnel-socket.js';

export default defineCommand({
  meta: { name: 'port-forward', description: "Forward a local port to an app's endpoint (private ones too) through the API: pier port-forward --app APP [INSTANCE] LOCAL:REMOTE" },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    ports: { type: 'positional', description: "LOCAL:REMOTE (REMOTE: the endpoint's port; LOCAL 0 picks a free one); or INSTANCE then LOCAL:REMOTE", valueHint: '[INSTANCE] LOCAL:REMOTE', required: true },
    address: { type: 'string', description: 'The local address to listen on', default: '127.0.0.1', valueHint: 'ADDRESS' },
    'idle-timeout': { type: 'string', description: "Close a connection after this many seconds without traffic (default: the endpoint's idle_timeout, else 900)", valueHint: 'SECONDS' },
  },
  async run({ args }) {
    const positionals = args._.map(String);
    const spec = positionals.at(-1) ?? '';
    const instance = positionals.length > 1 ? positionals[0] : undefined;
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(spec);
    const local = Number(m?.[1]);
    const remote = Number(m?.[2]);
    if (!m || local > 65535 || remote < 1 || remote > 65535 || positionals.length > 2) {
      throw new CliError('E_USAGE', `expected [INSTANCE] LOCAL:REMOTE, not "${positionals.join(' ')}"`, { hint: `e.g. pier port-forward --app ${args.app} 15432:5432`, exitCode: EXIT.usage });
    }
    const idleTimeout = parseIdle(args['idle-timeout']);
    const client = new ApiClient(loadClientConfig(process.env));
    // Refused before anything listens: a script learns at once (exit 4) that it cannot get in.
    const target = await client.tunnelTarget(args.app, { port: remote, instance }).catch(refusedExit);

    const open = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      const from = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      client.openTunnel(args.app, { port: remote, instance, kind: 'port-forward', idleTimeout }).then(
        (ws) => {
          socket.resume();
          void joinTunnel(socket, ws).then((r) => {
            if (r.error) warn(`connection from ${from}: ${r.error.message} (${r.error.code})${r.error.hint ? `; ${r.error.hint}` : ''}`);
          });
        },
        (err: CliError) => {
          warn(`connection from ${from} refused: ${err.message} (${err.code})`);
          socket.destroy();
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new CliError('E_LISTEN', `cannot listen on ${args.address}:${local}: ${err.code ?? err.message}`, { hint: 'pick another LOCAL port (0 picks a free one)', exitCode: EXIT.error })),
      );
      server.listen(local, args.address, () => resolve());
    });
    const bound = server.address() as net.AddressInfo;
    const where = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
    const about = target.endpoint ? `${target.access} endpoint :${remote}` : `port ${remote} of ${target.instance}`;
    progress(`forwarding ${where} -> ${target.app} ${about} (${target.process} instances, container port ${target.target}${target.proxyProtocol === 'none' ? '' : `, PROXY ${target.proxyProtocol}`}); Ctrl-C stops`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        server.close();
        // Stopping ends the connections it carries too, or they would keep the process alive; with
        // a reset, so that a transfer cut short does not look finished to the local client.
        for (const s of open) reset(s);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
});

export function parseIdle(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 86_400) {
    throw new CliError('E_USAGE', `--idle-timeout must be a whole number of seconds from 1 to 86400, not "${text}"`, { exitCode: EXIT.usage });
  }
  return n;
}

/** A token without the right, or for another app (which the API answers 404): exit 4. */
export function refusedExit(err: unknown): never {
  if (err instanceof CliError && REFUSED_CODES.has(err.code)) throw new CliError(err.code, err.message, { hint: err.hint ?? 'use a token with the "connect" scope for this app', exitCode: EXIT.auth });
  throw err;
}
