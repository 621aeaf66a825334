// `pier server` from this checkout's dist, as the soak runs it: on PostgreSQL and the soak's own
// Docker engine, in a process group of its own (the supervisor, its API child and edge workers),
// its JSON log lines appended to a file and read as they come. It tells the soak which API process
// runs (to kill it), and reports every process death the soak did not cause: the supervisor
// exiting, an API process exiting that was not killed on purpose, an edge worker dying, a fatal
// log line. Log lines at level error are counted by message for the report.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const PIER_BIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
export const API_URL = 'http://127.0.0.1:7700';

export interface SoakPier {
  /** Environment for CLI commands against this server. */
  cliEnv: NodeJS.ProcessEnv;
  token(): string;
  start(): Promise<void>;
  /** SIGTERM to the supervisor; resolves once it exited (the group is killed after 60 s). */
  stop(): Promise<void>;
  running(): boolean;
  /** SIGKILLs the current API process; resolves with its pid once a new one is ready (bounded). */
  killApi(timeoutMs: number): Promise<number>;
  /** Error-level log lines by message. */
  errorLines(): Map<string, number>;
  logFile: string;
  close(): Promise<void>;
}

export interface SoakPierOptions {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** A process ended that the soak did not end. */
  onUnexpectedDeath(detail: string): void;
  log(line: string): void;
}

export function createSoakPier(options: SoakPierOptions): SoakPier {
  const { dir } = options;
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'pier-server.log');
  const env: NodeJS.ProcessEnv = { ...options.env, PIER_DATA_DIR: dataDir, XDG_CONFIG_HOME: join(dir, 'config'), PIER_LOG_LEVEL: 'info' };
  delete env.PIER_API_URL;
  delete env.PIER_TOKEN;
  let child: ChildProcess | null = null;
  let logStream: WriteStream | null = null;
  let stopping = false;
  let token = '';
  let apiPid: number | null = null;
  /** API processes the soak killed: their exit is expected. */
  const killed = new Set<number>();
  const errors = new Map<string, number>();
  let readyWaiters: ((pid: number) => void)[] = [];

  const running = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;

  const onLogLine = (line: string): void => {
    logStream?.write(`${line}\n`);
    let entry: { level?: number; msg?: string; apiPid?: number; code?: number | null; signal?: string | null; pid?: number; err?: { message?: string } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    const msg = entry.msg ?? '';
    if ((entry.level ?? 0) >= 50) errors.set(msg, (errors.get(msg) ?? 0) + 1);
    if (msg === 'api process ready' && typeof entry.apiPid === 'number') {
      apiPid = entry.apiPid;
      const waiters = readyWaiters;
      readyWaiters = [];
      for (const w of waiters) w(entry.apiPid);
    } else if (msg.startsWith('api process exited') && typeof entry.apiPid === 'number' && !killed.has(entry.apiPid)) {
      options.onUnexpectedDeath(`the API process ${entry.apiPid} exited (code ${entry.code}, signal ${entry.signal}) and nobody killed it`);
    } else if (msg === 'api process not ready in time; killing it') {
      options.onUnexpectedDeath(`the API process ${entry.apiPid} did not become ready in time and was killed by the supervisor`);
    } else if (msg === 'edge worker died') {
      options.onUnexpectedDeath(`edge worker ${entry.pid} died (code ${entry.code}, signal ${entry.signal})`);
    } else if ((entry.level ?? 0) >= 60) {
      options.onUnexpectedDeath(`fatal log line: ${msg}${entry.err?.message ? `: ${entry.err.message}` : ''}`);
    }
  };

  const start = async (): Promise<void> => {
    if (running()) return;
    await mkdir(dir, { recursive: true });
    logStream ??= createWriteStream(logFile, { flags: 'a' });
    const c = spawn(process.execPath, [PIER_BIN, 'server', '--api-listen', '127.0.0.1:7700', '--data-dir', dataDir], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    child = c;
    stopping = false;
    apiPid = null;
    createInterface({ input: c.stderr! }).on('line', onLogLine);
    let out = '';
    c.stdout!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
    const exited = new Promise<string>((resolve) =>
      c.once('exit', (code, signal) => {
        const detail = `pier server (pid ${c.pid}) exited: code ${code}, signal ${signal}`;
        if (!stopping) options.onUnexpectedDeath(detail);
        resolve(detail);
      }),
    );
    const ready = new Promise<void>((resolve) => {
      const check = (): void => {
        if (/edge admin on /.test(out)) resolve();
      };
      c.stdout!.on('data', check);
    });
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      ready.then(() => 'ready'),
      exited,
      new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pier server did not start in 180 s'), 180_000))),
    ]);
    clearTimeout(timer);
    if (outcome !== 'ready') throw new Error(`${outcome}\n${out}\n${(await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n')}`);
    token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
    options.log(`pier server ready (pid ${c.pid}, API process ${apiPid})`);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (c === null || !running()) return;
    stopping = true;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => killGroup(c), 60_000);
    await exited;
    clearTimeout(timer);
  };

  return {
    get cliEnv() {
      return { ...env, PIER_API_URL: API_URL, PIER_TOKEN: token };
    },
    token: () => token,
    start,
    stop,
    running,
    async killApi(timeoutMs) {
      const pid = apiPid;
      if (pid === null) throw new Error('no API process is known to be running');
      killed.add(pid);
      const next = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no new API process was ready ${timeoutMs} ms after killing ${pid}`)), timeoutMs);
        readyWaiters.push((p) => {
          clearTimeout(timer);
          resolve(p);
        });
      });
      process.kill(pid, 'SIGKILL');
      await next;
      return pid;
    },
    errorLines: () => errors,
    logFile,
    async close() {
      await stop();
      if (child !== null) killGroup(child);
      await new Promise<void>((resolve) => (logStream === null ? resolve() : logStream.end(resolve)));
    },
  };
}

/** The server's whole process group (it was started as its leader). */
function killGroup(c: ChildProcess): void {
  try {
    if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}
