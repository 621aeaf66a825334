// The client side of a tunnel (`pier port-forward`, `pier connect`): one WebSocket to `…/connect/ws`
// per TCP connection, with the bearer token; joined to a local socket by proxy/websocket-tunnel.ts.
// A refused upgrade carries its error in a header (as exec's does): it becomes a CliError whose exit
// code says "refused" (4) for a token without the right, and for an app it may not see (404).
import WebSocket from 'ws';
import { CliError } from './cli-error.js';
import { EXIT, exitCodeForApiError } from './exit-codes.js';

/** Must match ERROR_HEADER in api/routes/websocket-guard.ts. */
const ERROR_HEADER = 'x-pier-error';

/** Errors that mean "this token may not open that tunnel": exit 4, like a 401 or 403. */
export const REFUSED_CODES = new Set(['E_UNAUTHENTICATED', 'E_FORBIDDEN', 'E_APP_NOT_FOUND']);

export function openTunnelSocket(url: string, token: string, connection: Pick<WebSocket.ClientOptions, 'createConnection'> = {}): Promise<WebSocket> {
  // A zero mask: masking guards browsers' intermediaries against cache poisoning and costs a pass
  // over every byte here and on the API (which skips unmasking a zero mask). The CLI is no browser.
  const ws = new WebSocket(url, { ...connection, headers: { authorization: `Bearer ${token}` }, perMessageDeflate: false, generateMask: (mask) => void mask.fill(0) });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      // Paused until joined: frames that came with the 101 are read on the next tick, before the
      // caller's continuation could listen, and were lost (a backend that speaks first lost its
      // first bytes, while its end came through). joinTunnel resumes it once it listens.
      ws.pause();
      resolve(ws);
    });
    ws.once('unexpected-response', (req, res) => {
      reject(refusal(res.statusCode ?? 0, res.headers[ERROR_HEADER]));
      res.resume();
      req.destroy();
    });
    ws.once('error', (err) => {
      // A certificate that failed its check (cli/api-transport.ts) says so itself.
      if (err instanceof CliError) return reject(err);
      reject(new CliError('E_API_UNREACHABLE', `cannot open a tunnel at ${url.replace(/\?.*$/, '')}: ${err.message}`, { hint: 'is the API up? `pier doctor` checks', cause: err }));
    });
  });
}

export function refusal(status: number, header: string | string[] | undefined): CliError {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw) {
    try {
      const e = JSON.parse(decodeURIComponent(raw)) as { code: string; message: string; hint?: string };
      return new CliError(e.code, e.message, { hint: e.hint, exitCode: REFUSED_CODES.has(e.code) ? EXIT.auth : exitCodeForApiError(e.code, status) });
    } catch {
      // Fall through to what the status says.
    }
  }
  if (status === 401) return new CliError('E_UNAUTHENTICATED', 'the API token is unknown, revoked or expired', { exitCode: EXIT.auth });
  if (status === 403) return new CliError('E_FORBIDDEN', 'this token may not open tunnels', { hint: 'use a token with the "connect" scope for this app', exitCode: EXIT.auth });
  return new CliError(`E_HTTP_${status}`, `the API refused the tunnel (${status})`);
}
