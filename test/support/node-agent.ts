// Runs the real `pier agent` for a test: its own storage root (given), a token in a file of the
// test's own, a free loopback port; stopped (by its PID) after the test. With `hiddenAt`, the agent
// runs in a mount namespace of its own where the root is bind-mounted at that (empty) folder: the
// paths it reports hold nothing in the test's namespace, as on another node, so any read of them
// by the API server's code would fail.
import type { TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PIER_BIN } from './pier-process.js';

export interface NodeAgent {
  url: string;
  token: string;
  tokenFile: string;
  pid: number;
  stderr: () => string;
  stop(): Promise<void>;
}

export async function startNodeAgent(t: TestContext, root: string, extraArgs: string[] = [], options: { hiddenAt?: string; token?: string } = {}): Promise<NodeAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-agent-'));
  // One token for several agents, as a server has one token file for all of them.
  const token = options.token ?? randomBytes(24).toString('hex');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, PIER_LOG_LEVEL: 'debug' };
  delete env.PIER_AGENT_TOKEN;
  const agentArgs = [PIER_BIN, 'agent', '--listen', '127.0.0.1:0', '--volume-root', options.hiddenAt ?? root, '--token-file', tokenFile, ...extraArgs];
  // unshare and sh exec into node: the PID is the agent's.
  const child = options.hiddenAt
    ? spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'agent-mounts', root, options.hiddenAt, process.execPath, ...agentArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, agentArgs, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  t.after(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pier agent did not start in 30 s\nstdout:\n${out}\nstderr:\n${err}`)), 30_000);
    child.stdout.on('data', () => {
      const m = / on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pier agent exited with ${code}\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
  return { url, token, tokenFile, pid: child.pid as number, stderr: () => err, stop };
}
