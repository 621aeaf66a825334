// Runs the real `pier` binary: a server in the background (own data dir, CLI config and
// database) and CLI commands against it, as a user would.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeInstallation } from './containers.js';
import { seedPgliteDataDir } from './pglite-template.js';
import { createMigratedTestDbUrl } from './test-db.js';
import { removeFirewallChainsIn } from './firewall-chains.js';

export const PIER_BIN = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

export interface PierServer {
  apiUrl: string;
  /** Environment under which CLI commands find this server (its CLI config). */
  env: NodeJS.ProcessEnv;
  dir: string;
  token: string;
  /** The PostgreSQL database it uses, or undefined on the embedded one. */
  databaseUrl: string | undefined;
  /** The API certificate's fingerprint (`SHA256:…`) when it serves HTTPS, for `--api-fingerprint`. */
  fingerprint: string | undefined;
  stdout: () => string;
  stderr: () => string;
  /** The `pier server` process's id (the supervisor, with all roles; for signals). */
  pid: number;
  /** The API process's id: the supervisor's latest API child (all roles), or `pid` (`--role api`). */
  apiPid(): number;
  /** How the process ended: its exit code, or the signal that killed it; null while it runs. */
  ended: () => { code: number | null; signal: NodeJS.Signals | null } | null;
  stop(): Promise<void>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface StartOptions {
  /** Share this database (another server's `databaseUrl`) instead of making a new one. */
  databaseUrl?: string | undefined;
  /** Extra `pier server` flags, e.g. ['--role', 'api']. */
  args?: string[];
}

export async function startPierServer(t: TestContext, extraEnv: NodeJS.ProcessEnv = {}, options: StartOptions = {}): Promise<PierServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-e2e-'));
  const databaseUrl = options.databaseUrl ?? (await createMigratedTestDbUrl(t));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    XDG_CONFIG_HOME: join(dir, 'config'),
    PIER_DATA_DIR: join(dir, 'data'),
    PIER_LOG_LEVEL: 'debug',
    ...extraEnv,
  };
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  if (databaseUrl) env.DATABASE_URL = databaseUrl;
  else {
    delete env.DATABASE_URL;
    await seedPgliteDataDir(env.PIER_DATA_DIR as string);
  }

  const child = spawn(process.execPath, [PIER_BIN, 'server', '--api-listen', '127.0.0.1:0', ...(options.args ?? [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited(child, 15_000);
    }
  };
  t.after(async () => {
    await stop();
    // Whatever the test did not clean up itself (private networks above all) goes with the server.
    const installation = /"installation":"(inst_[^"]+)"/.exec(err)?.[1];
    if (installation) await removeInstallation(installation, env);
    // The chain of offered ports it made (private-firewall.ts) outlives it on purpose.
    await removeFirewallChainsIn(err);
    await rm(dir, { recursive: true, force: true });
  });

  const apiUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`pier server did not start in 60 s\nstdout:\n${out}\nstderr:\n${err.slice(-4000)}`)), 60_000);
    const check = () => {
      const m = /API on (https?:\/\/\S+)/.exec(out);
      // The last of the start lines: the ones a test reads (fingerprint, edge) are all out then.
      if (m?.[1] && out.includes('pier: admin token in')) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pier server exited with ${code}\nstdout:\n${out}\nstderr:\n${err.slice(-4000)}`));
    });
  });
  const token = (await readFile(join(env.PIER_DATA_DIR ?? join(dir, 'data'), 'admin-token'), 'utf8')).trim();
  const ended = () => (child.exitCode === null && child.signalCode === null ? null : { code: child.exitCode, signal: child.signalCode });
  const apiPid = (): number => {
    const ready = [...err.matchAll(/"apiPid":(\d+),"apiUrl":"[^"]*","msg":"api process ready"/g)].at(-1);
    return ready === undefined ? (child.pid as number) : Number(ready[1]);
  };
  const fingerprint = /API certificate fingerprint (SHA256:\S+)/.exec(out)?.[1];
  return { apiUrl, env, dir, token, databaseUrl, fingerprint, pid: child.pid as number, apiPid, stdout: () => out, stderr: () => err, ended, stop };
}

/** Runs `pier ARGS…` to completion (bounded by timeoutMs) and returns its exit code and output. */
export function runPier(args: string[], env: NodeJS.ProcessEnv, options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PIER_BIN, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pier ${args.join(' ')} did not finish in ${options.timeoutMs ?? 120_000} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs `pier ARGS… --json` against the server, asserts it exited 0 (the message carries its
 * stderr and the tail of the server's log) and returns the parsed answer.
 */
export async function pierJson<T>(server: PierServer | null, args: string[]): Promise<T> {
  assert.ok(server, `pier ${args.join(' ')}: no server`);
  const r = await runPier([...args, '--json'], server.env);
  assert.equal(r.code, 0, `pier ${args.join(' ')}: ${r.stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  return JSON.parse(r.stdout) as T;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
