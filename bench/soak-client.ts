// How the soak talks to Pier: the HTTP API with fetch, and the real CLI (`node dist/cli/main.js`)
// as a user would run it. Both are bounded in time and reduce every answer to a status, an error
// code (the API's E_…, the CLI's `(E_…)` on its error line, a socket error, TIMEOUT) and a body.
import { spawn } from 'node:child_process';
import { PIER_BIN } from './soak-pier.js';

export interface HttpAnswer {
  status: number;
  /** The API's error code, a socket error code, or TIMEOUT; null on success. */
  code: string | null;
  message: string;
  body: unknown;
  ms: number;
}

export interface CliAnswer {
  exit: number | null;
  code: string | null;
  message: string;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface SoakClient {
  http(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<HttpAnswer>;
  cli(args: string[], timeoutMs?: number): Promise<CliAnswer>;
}

export function createSoakClient(apiUrl: string, env: () => NodeJS.ProcessEnv, token: () => string): SoakClient {
  return {
    async http(method, path, body, timeoutMs = 60_000) {
      const started = Date.now();
      try {
        const res = await fetch(`${apiUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${token()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? null : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        const text = await res.text();
        let json: unknown = null;
        try {
          json = text ? JSON.parse(text) : null;
        } catch {
          // Not JSON: reported below by status.
        }
        const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
        const code = res.ok ? null : (error?.code ?? `HTTP_${res.status}`);
        return { status: res.status, code, message: error?.message ?? (res.ok ? '' : text.slice(0, 300)), body: json, ms: Date.now() - started };
      } catch (err) {
        return { status: 0, code: socketCode(err), message: (err as Error).message, body: null, ms: Date.now() - started };
      }
    },
    cli(args, timeoutMs = 120_000) {
      const started = Date.now();
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [PIER_BIN, ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        child.stdout.on('data', (b: Buffer) => (stdout = (stdout + b.toString()).slice(-1_000_000)));
        child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-100_000)));
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, timeoutMs);
        child.once('close', (exit, signal) => {
          clearTimeout(timer);
          // The message may span lines (a failed deploy's last log lines); the code ends it.
          const line = /^error: ([\s\S]*?) \((E_[A-Z0-9_]+)\)$/m.exec(stderr);
          let code: string | null = line?.[2] ?? null;
          if (timedOut) code = 'TIMEOUT';
          else if (signal !== null) code = `SIGNAL_${signal}`;
          else if (exit !== 0 && code === null) code = `EXIT_${exit}`;
          resolve({ exit, code, message: line?.[1] ?? (exit === 0 ? '' : stderr.trim().split('\n').slice(-3).join(' ').slice(0, 300)), stdout, stderr, ms: Date.now() - started });
        });
      });
    },
  };
}

/** ECONNREFUSED, ECONNRESET, TIMEOUT …: what undici wraps in "fetch failed". */
export function socketCode(err: unknown): string {
  const e = err as { name?: string; code?: string; cause?: { code?: string; name?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.cause?.name === 'TimeoutError') return 'TIMEOUT';
  return e.cause?.code ?? e.code ?? 'FETCH_FAILED';
}
