// The middleware in front of every WebSocket route (exec, tunnels): a request without an upgrade
// is a 400 with a hint, and an error of the route (already the response, via app.ts's onError)
// is copied into a header, because the client of a refused upgrade sees only status and headers.
import type { Context, MiddlewareHandler } from 'hono';
import type { ApiEnv } from '../auth.js';
import { isPierError, PierError } from '../pier-error.js';

/** Carries an error to WebSocket clients (cli/exec-socket.ts, cli/tunnel-socket.ts read it). */
export const ERROR_HEADER = 'x-pier-error';

/**
 * `hint`: what to use instead of a plain request. `onRefused`: runs after the header is set, with
 * the error and when the request came in (the tunnel route audits refusals).
 */
export function websocketGuard(hint: string, onRefused?: (c: Context<ApiEnv>, err: PierError, startedAt: number) => Promise<void>): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') {
      throw new PierError('E_BAD_REQUEST', 'this route needs a WebSocket upgrade', { status: 400, hint });
    }
    const startedAt = Date.now();
    await next();
    const err = c.error;
    if (!isPierError(err)) return;
    c.header(ERROR_HEADER, encodeURIComponent(JSON.stringify({ code: err.code, message: err.message, hint: err.hint })));
    await onRefused?.(c, err, startedAt);
  };
}
