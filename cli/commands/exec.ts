// `pier exec`: run a command in a running instance. One-shot by default (its stdout and stderr,
// then its exit code as ours); `-it` attaches a terminal over a WebSocket.
import { fstatSync } from 'node:fs';
import { defineCommand } from 'citty';
import { ApiClient } from '../api-client.js';
import { CliError } from '../cli-error.js';
import { CommandExit } from '../command-exit.js';
import { loadClientConfig } from '../client-config.js';
import { EXIT } from '../exit-codes.js';
import { warn, writeRaw, writeRawError } from '../output.js';

export default defineCommand({
  meta: { name: 'exec', description: 'Run a command in a running instance: pier exec --app APP INSTANCE -- CMD ARGS…' },
  args: {
    app: { type: 'string', alias: 'a', description: 'The app', valueHint: 'APP', required: true },
    instance: { type: 'positional', description: 'The instance (`pier status --app APP` lists them)', valueHint: 'INSTANCE', required: true },
    interactive: { type: 'boolean', alias: 'i', description: 'Attach stdin (use with -t: -it)', default: false },
    tty: { type: 'boolean', alias: 't', description: 'Give the command a terminal (use with -i: -it)', default: false },
    timeout: { type: 'string', description: 'Give up on a one-shot command after this many seconds', default: '60', valueHint: 'SECONDS' },
  },
  async run({ args }): Promise<void> {
    // Everything after the instance is the command; `--` keeps its flags from being read as ours.
    const [instance, ...cmd] = args._.map(String);
    if (!instance) throw new CliError('E_USAGE', 'name the instance to run the command in', { hint: `\`pier status --app ${args.app}\` lists them`, exitCode: EXIT.usage });
    const client = new ApiClient(loadClientConfig(process.env));
    if (args.interactive || args.tty) throw new CommandExit(await interactive(client, args.app, instance, cmd.length ? cmd : ['sh']));
    if (cmd.length === 0) {
      throw new CliError('E_USAGE', 'give the command to run after the instance', { hint: `pier exec --app ${args.app} ${instance} -- CMD ARGS…, or -it for a shell`, exitCode: EXIT.usage });
    }
    const seconds = Number(args.timeout);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new CliError('E_USAGE', `--timeout must be a positive number of seconds, not "${args.timeout}"`, { exitCode: EXIT.usage });
    }
    const result = await client.exec(args.app, instance, { cmd, timeoutMs: Math.round(seconds * 1000) });
    writeRaw(result.stdout);
    writeRawError(result.stderr);
    if (result.truncated) warn('the output passed 1 MiB and was cut; redirect it to a file inside the container and read that in parts');
    if (result.exitCode !== 0) throw new CommandExit(result.exitCode);
  },
});

async function interactive(client: ApiClient, app: string, instance: string, cmd: string[]): Promise<number> {
  const { stdin, stdout } = process;
  const terminal = stdin.isTTY === true;
  // Without a terminal, waiting on stdin could hang forever; only piped input is streamed.
  if (!terminal && !isPiped()) {
    throw new CliError('E_NO_TTY', '-it needs a terminal, or input piped into stdin', {
      hint: 'run it in a terminal, pipe the input in (printf "ls\\nexit\\n" | pier exec -it …), or drop -it for a one-shot command',
      exitCode: EXIT.usage,
    });
  }
  // A terminal that reports no size (0 × 0, e.g. under `script` fed from a pipe) gets the classic one.
  const size = () => ({ cols: (stdout.isTTY && stdout.columns) || 80, rows: (stdout.isTTY && stdout.rows) || 24 });
  const socket = await client.execSocket(app, instance, { cmd, ...size(), onOutput: writeRaw });
  const onInput = (data: Buffer) => socket.write(data);
  // ^D is how a terminal says "end of input": the remote shell reads it as EOF.
  const onEnd = () => socket.write(Buffer.from([4]));
  const onResize = () => {
    const { cols, rows } = size();
    socket.resize(cols, rows);
  };
  if (terminal) stdin.setRawMode(true);
  stdin.on('data', onInput);
  stdin.once('end', onEnd);
  process.on('SIGWINCH', onResize);
  try {
    return await socket.exited;
  } finally {
    process.off('SIGWINCH', onResize);
    stdin.off('data', onInput);
    stdin.off('end', onEnd);
    if (terminal) stdin.setRawMode(false);
    stdin.pause();
    socket.close();
  }
}

function isPiped(): boolean {
  try {
    const stat = fstatSync(0);
    return stat.isFIFO() || stat.isFile() || stat.isSocket();
  } catch {
    return false;
  }
}
