// Real peers for interop tests (haproxy, nginx, openssl): present, or the test skips with a
// message; in CI (CI=true) a missing peer fails the test instead, so it cannot go unnoticed.

import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';

/** The binary's path, or null after marking the test skipped (outside CI). */
export function requirePeer(t: TestContext, name: string): string | null {
  let path = '';
  try {
    path = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    path = '';
  }
  if (path !== '') return path;
  if (process.env.CI === 'true') throw new Error(`${name} is required in CI (apt-get install ${name})`);
  t.skip(`${name} is not installed`);
  return null;
}

/**
 * Runs `command` until the test ends; stderr is kept for error messages. It gets its own process
 * group, killed whole in t.after, so workers it forks (nginx) go with it.
 */
export function runPeer(t: TestContext, command: string, args: string[]): { output: () => string; exited: Promise<number | null> } {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(async () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    await exited;
  });
  return { output: () => output, exited };
}

/** Resolves once host:port accepts a connection (bounded: 100 tries, 50 ms apart). */
export async function waitForPort(host: string, port: number, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} did not listen on ${host}:${port}`);
}
