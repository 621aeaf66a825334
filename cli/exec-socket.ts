// The client side of an interactive exec: a WebSocket to `…/exec/ws` with the bearer token.
// Binary frames are terminal bytes both ways; text frames are `{"type":"resize"}` from us and
// `{"type":"exit","code":N}` or `{"type":"error","error":{…}}` from the server.
import WebSocket from 'ws';
import { CliError } from './cli-error.js';
import { EXIT, exitCodeForApiError } from './exit-codes.js';

export interface ExecSocket {
  write(data: Buffer): void;
  resize(cols: number, rows: number): void;
  /** The remote exit code; rejects when the server reports an error or the connection drops first. */
  exited: Promise<number>;
  close(): void;
}

/** Must match ERROR_HEADER in api/routes/websocket-guard.ts: a refused upgrade has no body to carry the error. */
const ERROR_HEADER = 'x-pier-error';

export function openExecSocket(url: string, token: string, onOutput: (data: Buffer) => void, connection: Pick<WebSocket.ClientOptions, 'createConnection'> = {}): Promise<ExecSocket> {
  const ws = new WebSocket(url, { ...connection, headers: { authorization: `Bearer ${token}` } });
  let exitCode: number | undefined;
  let failure: CliError | undefined;
  // An error after the session opened ends in 'close', which settles `exited`.
  ws.on('error', () => undefined);
  ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
    if (isBinary) return onOutput(bytes);
    let message: { type?: string; code?: unknown; error?: { code?: string; message?: string; hint?: string } };
    try {
      message = JSON.parse(bytes.toString('utf8')) as typeof message;
    } catch {
      return;
    }
    if (message.type === 'exit' && typeof message.code === 'number') exitCode = message.code;
    if (message.type === 'error') {
      const code = message.error?.code ?? 'E_EXEC_FAILED';
      failure = new CliError(code, message.error?.message ?? 'the exec session failed', { hint: message.error?.hint, exitCode: exitCodeForApiError(code, 500) });
    }
  });
  const exited = new Promise<number>((resolve, reject) => {
    ws.once('close', () => {
      if (exitCode !== undefined) resolve(exitCode);
      else reject(failure ?? new CliError('E_EXEC_DISCONNECTED', 'the connection to the exec session closed before the process exited', { hint: 'the server may have stopped; run the command again' }));
    });
  });
  // Handled by whoever awaits it; this only keeps an early rejection from being unhandled.
  exited.catch(() => undefined);

  return new Promise((resolve, reject) => {
    ws.once('open', () =>
      resolve({
        write: (data) => ws.send(data, { binary: true }),
        resize: (cols, rows) => ws.send(JSON.stringify({ type: 'resize', cols, rows })),
        exited,
        close: () => ws.close(),
      }),
    );
    ws.once('unexpected-response', (req, res) => {
      reject(refused(res.statusCode ?? 0, res.headers[ERROR_HEADER]));
      res.resume();
      req.destroy();
    });
    ws.once('error', (err) => {
      // A certificate that failed its check (cli/api-transport.ts) says so itself.
      if (err instanceof CliError) return reject(err);
      reject(new CliError('E_API_UNREACHABLE', `cannot open an exec session at ${url.replace(/\?.*$/, '')}: ${err.message}`, { hint: 'start the API with `pier server`, or set PIER_API_URL', cause: err }));
    });
  });
}

function refused(status: number, header: string | string[] | undefined): CliError {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw) {
    try {
      const e = JSON.parse(decodeURIComponent(raw)) as { code: string; message: string; hint?: string };
      return new CliError(e.code, e.message, { hint: e.hint, exitCode: exitCodeForApiError(e.code, status) });
    } catch {
      // Fall through to what the status says.
    }
  }
  if (status === 401) return new CliError('E_UNAUTHENTICATED', 'the API token is unknown, revoked or expired', { exitCode: EXIT.auth });
  if (status === 403) return new CliError('E_FORBIDDEN', 'this token may not exec', { hint: 'use a token with the "exec" scope', exitCode: EXIT.auth });
  return new CliError(`E_HTTP_${status}`, `the API refused the exec session (${status})`);
}
