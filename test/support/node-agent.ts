// Runs the real `pier agent` for a test: its own storage root (given), a token in a file of the
// test's own, a free loopback port; stopped (by its PID) after the test.
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

export async function startNodeAgent(t: TestContext, root: string, extraArgs: string[] = []): Promise<NodeAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-agent-'));
  const token = randomBytes(24).toString('hex');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const env: NodeJS.ProcessEnv = { ...process.env, PIER_LOG_LEVEL: 'debug' };
  delete env.PIER_AGENT_TOKEN;
  const child = spawn(process.execPath, [PIER_BIN, 'agent', '--listen', '127.0.0.1:0', '--volume-root', root, '--token-file', tokenFile, ...extraArgs], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
