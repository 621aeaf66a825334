// Test fixture: the real `pier edge` binary as a child process (admin address read from stdout),
// and `pier server --role api` (no in-process edge) for the feed tests. Both stopped in t.after.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { EndpointState } from '../../proxy/endpoint-state.js';
import { removeFirewallChainsIn } from '../support/firewall-chains.js';
import { PIER_BIN } from '../support/pier-process.js';
import { createTestDbUrl } from '../support/test-db.js';

export interface ChildHandle {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Sends `signal` and resolves with the exit code (SIGKILL after timeoutMs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

export interface EdgeProcess extends ChildHandle {
  adminUrl: string;
  metrics(): Promise<string>;
  status(): Promise<EdgeStatusView>;
}

export interface EdgeStatusView {
  edge?: { id: string; name: string };
  version: number | null;
  lastError: string | null;
  io: 'handle' | 'socket' | null;
  listeners: { address: string; port: number; endpoint: string }[];
  endpoints: EndpointState[];
  workers: { pid: number; version: number | null; connections: number }[];
  report?: { lastAt: string | null; lastOk: boolean | null; lastError: string | null; sent: number; failed: number; heartbeatMs: number };
  descriptors: { pid: number; limit: number | null; open: number | null }[];
}

export interface SpawnOptions {
  /** Run through `sh -c 'ulimit -n N; exec node ...'` (soft and hard), or `-Sn` with `soft: true`. */
  ulimit?: { nofile: number; softOnly?: boolean };
}

/** Starts `node NODE_FLAGS pier edge ARGS --admin-listen 127.0.0.1:0` and waits for its admin address. */
export async function startEdgeProcess(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = [], spawnOptions: SpawnOptions = {}): Promise<EdgeProcess> {
  const handle = spawnPier(t, ['edge', ...args, '--admin-listen', '127.0.0.1:0'], { ...process.env, PIER_LOG_LEVEL: 'debug', ...env }, nodeFlags, spawnOptions);
  const adminUrl = await waitForLine(handle, /admin on (http:\/\/\S+)/, 'pier edge');
  return {
    ...handle,
    adminUrl,
    metrics: async () => (await fetch(`${adminUrl}/metrics`)).text(),
    status: async () => (await (await fetch(`${adminUrl}/status`)).json()) as EdgeStatusView,
  };
}

export interface ApiServer extends ChildHandle {
  apiUrl: string;
  token: string;
  /** Environment under which CLI commands reach this server. */
  env: NodeJS.ProcessEnv;
  dir: string;
}

/** `pier server --role api`: the API and the scheduler, no edge in the process. */
export async function startApiServer(t: TestContext): Promise<ApiServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-edge-api-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const databaseUrl = await createTestDbUrl(t);
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), PIER_DATA_DIR: join(dir, 'data'), PIER_LOG_LEVEL: 'debug' };
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else delete env.DATABASE_URL;
  const handle = spawnPier(t, ['server', '--role', 'api', '--api-listen', '127.0.0.1:0'], env);
  // After the stop above (hooks run in order): the firewall chain it made (private-firewall.ts).
  t.after(() => removeFirewallChainsIn(handle.stderr()));
  const apiUrl = await waitForLine(handle, /API on (http:\/\/\S+)/, 'pier server');
  const token = (await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim();
  return { ...handle, apiUrl, token, env, dir };
}

function spawnPier(t: TestContext, args: string[], env: NodeJS.ProcessEnv, nodeFlags: string[] = [], options: SpawnOptions = {}): ChildHandle {
  const argv = [...nodeFlags, PIER_BIN, ...args];
  const limit = options.ulimit;
  // `exec` keeps one process: the pid we signal is node's.
  const child =
    limit === undefined
      ? spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('sh', ['-c', `ulimit ${limit.softOnly === true ? '-S -n' : '-n'} ${limit.nofile} && exec "$0" "$@"`, process.execPath, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exit;
    clearTimeout(timer);
    return code;
  };
  t.after(() => stop('SIGTERM', 10_000));
  return { child, stdout: () => out, stderr: () => err, stop };
}

function waitForLine(handle: ChildHandle, pattern: RegExp, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 60 s\nstdout:\n${handle.stdout()}\nstderr:\n${handle.stderr().slice(-4000)}`)), 60_000);
    const check = (): void => {
      const m = pattern.exec(handle.stdout());
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    handle.child.stdout?.on('data', check);
    handle.child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}\nstdout:\n${handle.stdout()}\nstderr:\n${handle.stderr().slice(-4000)}`));
    });
  });
}

/** The value of one sample in Prometheus text, or undefined. */
export function sample(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}${labels} `)) return Number(line.slice(name.length + labels.length + 1));
  }
  return undefined;
}
