// The API process of `pier server`, seen from its supervisor (server-supervisor.ts): the same
// program forked with `server --role api` and PIER_SERVER_SUPERVISED=1. It says over IPC when it
// listens (ApiReady); it is restarted when it exits (backoff 0.5 s doubling to 15 s, reset once
// a process ran a minute), restarted on demand (SIGTERM, wait, fork), and stopped first at
// shutdown. Restarted ones listen on the port the first one got (also when that was port 0). The
// child ends itself when the supervisor's IPC channel closes (the supervisor died).

import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';

/** Set in the API child's environment: print nothing, say "ready" over IPC, exit on disconnect. */
export const SUPERVISED_ENV = 'PIER_SERVER_SUPERVISED';

/** API child → supervisor, once it serves. */
export interface ApiReady {
  type: 'pier-api-ready';
  apiUrl: string;
  databaseKind: 'postgres' | 'pglite';
  adminTokenFile: string;
  /** The edge-scope token the edge of this server follows the feed with. */
  edgeTokenFile: string;
  /** The API certificate's SHA-256 fingerprint when it serves HTTPS (api/tls/api-tls.ts). */
  apiFingerprint?: string | undefined;
  /** Problems worth telling the operator (Docker unreachable ...), printed once by the supervisor. */
  warnings: string[];
  /** The line saying whether the local CLI talks to this server. */
  cliConfigLine: string;
}

export interface ApiChildOptions {
  /** The program (dist/cli/main.js) and the arguments that make it the API alone. */
  modulePath: string;
  args: string[];
  /** Where the first process listens; later ones get the port it actually got. */
  listen: { host: string; port: number };
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** How long a process may take to say it is ready (migrations included; default 120 s). */
  readyTimeoutMs?: number;
  /** How long a stopping process may take before SIGKILL (default 20 s). */
  stopTimeoutMs?: number;
  /** Every process that becomes ready, the first included. */
  onReady?: (ready: ApiReady, pid: number | undefined) => void;
}

/** The first API process failed: the supervisor exits with its code (its stderr said why). */
export class ApiStartError extends Error {
  constructor(readonly exitCode: number) {
    super(`the API process exited with code ${exitCode} before it was ready`);
  }
}

export interface ApiChild {
  /** Starts the first process; rejects with ApiStartError when it ends before it is ready. */
  start(): Promise<ApiReady>;
  /** Stops the running process and starts a new one (SIGHUP: new code on disk is picked up). */
  restart(): Promise<void>;
  /** The running process's pid, if any. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 15_000;
const STABLE_MS = 60_000;

export function createApiChild(options: ApiChildOptions): ApiChild {
  const { log } = options;
  const readyTimeoutMs = options.readyTimeoutMs ?? 120_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 20_000;
  let listen = options.listen;
  let child: ChildProcess | null = null;
  let stopping = false;
  /** A restart on demand runs: an exit on the way is expected. */
  let replacing: Promise<void> | null = null;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  /** null before start(); false until the first process is ready (its failure is start()'s). */
  let started: boolean | null = null;

  /** Forks one process; resolves with its ready message, or null when it ends (or hangs) first. */
  const launch = (): { process: ChildProcess; ready: Promise<ApiReady | null> } => {
    const args = [...options.args, '--api-listen', `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`];
    const proc = fork(options.modulePath, args, { env: { ...options.env, [SUPERVISED_ENV]: '1' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child = proc;
    const startedAt = Date.now();
    const ready = new Promise<ApiReady | null>((resolve) => {
      const timer = setTimeout(() => {
        log.error({ apiPid: proc.pid, timeoutMs: readyTimeoutMs }, 'api process not ready in time; killing it');
        proc.kill('SIGKILL');
        resolve(null);
      }, readyTimeoutMs);
      proc.on('message', (message: ApiReady) => {
        if (message?.type !== 'pier-api-ready') return;
        clearTimeout(timer);
        // Restarted processes come back on the same port, also when the first asked for port 0.
        const port = Number(new URL(message.apiUrl).port);
        if (port > 0) listen = { ...listen, port };
        log.info({ apiPid: proc.pid, apiUrl: message.apiUrl }, 'api process ready');
        resolve(message);
        options.onReady?.(message, proc.pid);
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(null);
        if (child === proc) child = null;
        const ranMs = Date.now() - startedAt;
        if (stopping || replacing !== null || started === false) return;
        failures = ranMs > STABLE_MS ? 1 : failures + 1;
        const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (failures - 1));
        log.error({ apiPid: proc.pid, code, signal, restartInMs: backoff }, 'api process exited; restarting it (the edge keeps serving)');
        restartTimer = setTimeout(() => {
          // A group-wide Ctrl-C reaches us just after the child: no restart then.
          if (!stopping && replacing === null) void launch().ready;
        }, backoff);
      });
    });
    return { process: proc, ready };
  };

  const terminate = (proc: ChildProcess): Promise<void> =>
    new Promise((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
      const timer = setTimeout(() => {
        log.warn({ apiPid: proc.pid, timeoutMs: stopTimeoutMs }, 'api process did not stop in time; killing it');
        proc.kill('SIGKILL');
      }, stopTimeoutMs);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill('SIGTERM');
    });

  return {
    get pid() {
      return child?.pid;
    },
    async start() {
      started = false;
      const first = launch();
      const exit = new Promise<number>((resolve) => first.process.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))));
      const ready = await first.ready;
      if (ready === null) throw new ApiStartError(await exit);
      started = true;
      return ready;
    },
    restart() {
      replacing ??= (async () => {
        clearTimeout(restartTimer);
        const old = child;
        log.info({ apiPid: old?.pid }, 'restarting the api process');
        if (old !== null) await terminate(old);
        if (stopping) return;
        failures = 0;
        const next = launch();
        // Not ready (it exited or hung): the usual restart loop takes over from here.
        const ready = await next.ready;
        replacing = null;
        if (ready === null && !stopping && child === null) {
          log.error('restarted api process did not come up; retrying with backoff');
          restartTimer = setTimeout(() => void launch().ready, MIN_BACKOFF_MS);
        }
      })().finally(() => {
        replacing = null;
      });
      return replacing;
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      if (child !== null) await terminate(child);
    },
  };
}
