// `pier edge`: run the edge data plane on its own, from a snapshot file or following the API's
// config feed (and reporting to it). A launcher: the program (proxy/edge-main.ts) is loaded
// lazily; logs go to stderr. Signals: SIGHUP re-reads the snapshot file, SIGUSR2 replaces the
// workers one by one (no listening socket closes), SIGTERM/SIGINT drain and stop.
import { defineCommand } from 'citty';
import { readFile } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import pino from 'pino';
import { checkToken } from '../api-token.js';
import { apiFetch } from '../api-transport.js';
import { parseFingerprint } from '../../api/tls/certificate-fingerprint.js';
import { CliError } from '../cli-error.js';
import { EXIT } from '../exit-codes.js';
import { printLine } from '../output.js';
import { currentNodeFacts, decideTcpIo, TCP_IO_CHOICES, type TcpIoChoice } from '../../proxy/tcp-io/select-tcp-io.js';

export default defineCommand({
  meta: { name: 'edge', description: 'Run the edge proxy standalone, from a snapshot file or the API feed' },
  args: {
    config: { type: 'string', description: 'Snapshot file (EdgeConfig JSON); re-read on SIGHUP', valueHint: 'FILE' },
    watch: { type: 'boolean', description: 'Also re-read the snapshot file when it changes', default: false },
    api: { type: 'string', description: 'Follow this API’s config feed (env PIER_EDGE_API)', valueHint: 'URL' },
    'api-fingerprint': { type: 'string', description: 'Pin the API certificate by the SHA-256 fingerprint `pier server` printed (an https:// API with a self-signed certificate; env PIER_API_FINGERPRINT)', valueHint: 'SHA256:…' },
    'token-file': { type: 'string', description: 'File holding a token with the edge scope (org-wide), or set PIER_TOKEN; never on the command line, where `ps` shows it', valueHint: 'FILE' },
    workers: { type: 'string', description: 'Worker processes (default: one per core; 1 = no cluster)', valueHint: 'N' },
    'admin-listen': { type: 'string', description: 'Admin server: /metrics, /healthz, /status', default: '127.0.0.1:9901', valueHint: 'HOST:PORT' },
    'data-dir': { type: 'string', description: 'Where the last good snapshot is kept (env PIER_EDGE_DATA_DIR; default ./.pier-edge)', valueHint: 'DIR' },
    'drain-timeout': { type: 'string', description: 'Seconds established connections may run on at stop or after removal', default: '30', valueHint: 'SECONDS' },
    io: { type: 'string', description: 'TCP I/O: auto (handle where Node allows it, else socket), handle or socket (env PIER_EDGE_IO)', valueHint: 'MODE' },
    name: { type: 'string', description: 'Name of this edge in its reports to the API (env PIER_EDGE_NAME; default the host name)', valueHint: 'NAME' },
  },
  async run({ args, rawArgs }) {
    const api = args.api ?? process.env.PIER_EDGE_API;
    if ((args.config === undefined) === (api === undefined)) {
      throw new CliError('E_USAGE', 'pass exactly one of --config FILE and --api URL', { exitCode: EXIT.usage, hint: 'see `pier edge --help`' });
    }
    const token = await edgeToken(rawArgs, args['token-file']);
    if (api !== undefined && !token) {
      throw new CliError('E_USAGE', '--api needs a token', { exitCode: EXIT.usage, hint: 'set PIER_TOKEN or pass --token-file FILE (an org-wide token with the edge scope)' });
    }
    const pinText = args['api-fingerprint'] ?? (process.env.PIER_API_FINGERPRINT || undefined);
    const fingerprint = pinText === undefined ? undefined : parseFingerprint(pinText);
    if (fingerprint === null) {
      throw new CliError('E_USAGE', `"${pinText}" is not a SHA-256 fingerprint`, { exitCode: EXIT.usage, hint: 'copy the value `pier server` printed: SHA256:… (base64), or 32 hex bytes with colons' });
    }
    const io = args.io ?? (process.env.PIER_EDGE_IO || 'auto');
    if (!(TCP_IO_CHOICES as readonly string[]).includes(io)) {
      throw new CliError('E_USAGE', `--io must be one of ${TCP_IO_CHOICES.join(', ')}, not "${io}"`, { exitCode: EXIT.usage });
    }
    const decision = decideTcpIo(io as TcpIoChoice, currentNodeFacts());
    if ('error' in decision) throw new CliError('E_USAGE', decision.error, { exitCode: EXIT.usage, hint: 'use --io socket, or --io auto to pick what runs' });
    // Under `node --permission` without --allow-child-process, a cluster cannot fork its workers.
    const permission = (process as { permission?: { has(scope: string): boolean } }).permission;
    const mayFork = permission === undefined || permission.has('child');
    const workers = args.workers === undefined ? (mayFork ? availableParallelism() : 1) : Number(args.workers);
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) {
      throw new CliError('E_USAGE', `--workers must be a whole number from 1 to 256, not "${args.workers}"`, { exitCode: EXIT.usage });
    }
    if (workers > 1 && !mayFork) {
      throw new CliError('E_USAGE', `--workers ${workers} forks worker processes, which node --permission forbids here`, {
        exitCode: EXIT.usage,
        hint: 'add --allow-child-process to node, or run --workers 1',
      });
    }
    const drainSeconds = Number(args['drain-timeout']);
    if (!(drainSeconds >= 0)) throw new CliError('E_USAGE', `--drain-timeout must be a number of seconds, not "${args['drain-timeout']}"`, { exitCode: EXIT.usage });

    const name = args.name ?? (process.env.PIER_EDGE_NAME || hostname());
    if (name.trim() === '' || name.length > 200 || /[\u0000-\u001f\u007f]/.test(name)) {
      throw new CliError('E_USAGE', '--name must be 1 to 200 characters with no control characters', { exitCode: EXIT.usage });
    }

    const { parseListen } = await import('../../api/config.js');
    const { startEdgeMain } = await import('../../proxy/edge-main.js');
    const { raiseFdLimit } = await import('../../proxy/fd-limit.js');
    const { PIER_VERSION } = await import('../pier-version.js');
    const logLevel = process.env.PIER_LOG_LEVEL ?? 'info';
    const log = pino({ level: logLevel }, pino.destination(2));
    // Before any worker is forked: they inherit it.
    await raiseFdLimit(log);
    const dataDir = args['data-dir'] ?? (process.env.PIER_EDGE_DATA_DIR || '.pier-edge');
    const edge = await startEdgeMain({
      source: api !== undefined ? { kind: 'api', url: api, token: token as string, fetch: (url, init) => apiFetch({ apiUrl: api, fingerprint }, String(url), init) } : { kind: 'file', path: args.config as string, watch: args.watch },
      dataDir,
      workers,
      admin: parseListen(args['admin-listen']),
      drainTimeoutMs: drainSeconds * 1000,
      io: io as TcpIoChoice,
      name,
      version: PIER_VERSION,
      log,
      logLevel,
    }).catch((err: Error) => {
      throw new CliError('E_EDGE_START', err.message, { hint: 'fix the snapshot file or the listen address and start again', cause: err });
    });
    // Signal handlers first: whoever reads the lines below may signal us at once.
    const onHup = (): void => void edge.reload();
    const onUsr2 = (): void => void edge.roll();
    process.on('SIGHUP', onHup);
    process.on('SIGUSR2', onUsr2);
    const stopSignal = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    printLine(`pier edge: admin on ${edge.adminUrl} (/metrics, /healthz, /status)`);
    const single = args.workers === undefined && !mayFork ? ' (node --permission forbids forking)' : '';
    printLine(`pier edge: ${workers} worker${workers === 1 ? '' : 's'}${single}, ${edge.io} i/o, serving version ${edge.version ?? 'none yet'}${api !== undefined ? `, following ${api} as edge "${name}" (${edge.id})` : ''}`);
    await stopSignal;
    process.off('SIGHUP', onHup);
    process.off('SIGUSR2', onUsr2);
    log.info('stopping: draining connections');
    await edge.stop();
    log.info('stopped');
  },
});

/**
 * The feed's token, from --token-file or PIER_TOKEN. `--token SECRET` is refused: every user of
 * the host could read it in `ps` for as long as the edge runs.
 */
async function edgeToken(rawArgs: string[], file: string | undefined): Promise<string | undefined> {
  if (rawArgs.some((a) => a === '--token' || a.startsWith('--token='))) {
    throw new CliError('E_USAGE', '--token is not accepted: the token would be visible to every user of this host in `ps`', {
      exitCode: EXIT.usage,
      hint: 'set PIER_TOKEN, or put the token in a file only you can read and pass --token-file FILE',
    });
  }
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliError('E_USAGE', `cannot read the token file ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, { exitCode: EXIT.usage });
    });
    const token = text.trim();
    if (!token) throw new CliError('E_USAGE', `the token file ${file} is empty`, { exitCode: EXIT.usage });
    return checkToken(token, file);
  }
  const env = process.env.PIER_TOKEN;
  return env ? checkToken(env, 'PIER_TOKEN') : undefined;
}
