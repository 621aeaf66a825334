// Commands in an app's running instance: one-shot (`POST …/exec` → exit code, stdout, stderr) and
// interactive (`GET …/exec/ws`, a WebSocket carrying a TTY). Every exec is recorded as an event.
import { Hono, type Context } from 'hono';
import { upgradeWebSocket } from '@hono/node-server';
import type { WSContext, WSEvents } from 'hono/ws';
import { z } from 'zod';
import type { App, Instance } from '../../db/schema/index.js';
import type { ApiDeps } from '../api-deps.js';
import { findApp, requireScope, type ApiEnv } from '../auth.js';
import { findInstance, instanceNotRunning, runningContainer } from '../find-instance.js';
import { isPierError } from '../pier-error.js';
import { parseBody, parseQuery, readJson } from '../request.js';
import type { ExecSession } from '../runtime/runtime.js';
import type { ExecResultView } from '../views.js';
import { describeRoute } from '../openapi.js';
import { websocketGuard } from './websocket-guard.js';
import { execResultViewSchema } from '../view-schemas.js';

const execBody = z.object({
  cmd: z.array(z.string()).min(1, 'must hold at least the program to run').max(1000),
  timeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
});

const sessionQuery = z.object({
  cols: z.coerce.number().int().min(1).max(1000).default(80),
  rows: z.coerce.number().int().min(1).max(1000).default(24),
});

const resizeMessage = z.object({ type: z.literal('resize'), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) });

export { ERROR_HEADER } from './websocket-guard.js';

export function execRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  /** The app, the instance and its running container, for a token with the exec scope. */
  async function target(c: Context<ApiEnv>): Promise<{ app: App; instance: Instance; containerId: string }> {
    const auth = c.get('auth');
    requireScope(auth, 'exec');
    const app = await findApp(deps.db, auth, c.req.param('app') ?? '');
    const instance = await findInstance(deps.db, app, c.req.param('instance') ?? '');
    try {
      return { app, instance, containerId: runningContainer(app, instance) };
    } catch (err) {
      // An engine that stops takes its containers down first, so the row says "exited" while the
      // truth is "the engine is gone": say that (503, retryable) rather than 409.
      await deps.runtime.ping();
      throw err;
    }
  }

  async function audit(c: Context<ApiEnv>, app: App, instance: Instance, cmd: string[], interactive: boolean): Promise<void> {
    const auth = c.get('auth');
    await deps.events.record({
      orgId: app.orgId,
      appId: app.id,
      instanceId: instance.id,
      type: 'instance.exec',
      reason: interactive ? 'interactive' : 'command',
      message: `${interactive ? 'interactive exec' : 'exec'} in ${instance.id}: ${cmd.join(' ')}`.slice(0, 500),
      data: { cmd, interactive, tokenId: auth.tokenId },
    });
  }

  /** The engine's view can be fresher than the row: a container that just stopped reads as not running. */
  const notRunning = (app: App, instance: Instance) => (err: unknown): never => {
    if (isPierError(err) && (err.code === 'E_CONTAINER_NOT_RUNNING' || err.code === 'E_CONTAINER_NOT_FOUND')) throw instanceNotRunning(app, instance);
    throw err;
  };

  r.post('/apps/:app/instances/:instance/exec', async (c) => {
    const { app, instance, containerId } = await target(c);
    const body = parseBody(execBody, await readJson(c.req));
    await audit(c, app, instance, body.cmd, false);
    const result = await deps.runtime.exec(containerId, body.cmd, { timeoutMs: body.timeoutMs, signal: c.req.raw.signal }).catch(notRunning(app, instance));
    const view: ExecResultView = result;
    return c.json(view);
  });

  r.get(
    '/apps/:app/instances/:instance/exec/ws',
    websocketGuard('use `pier exec -it`, or POST …/exec for a one-shot command'),
    upgradeWebSocket(async (c) => {
      const { app, instance, containerId } = await target(c);
      const { cols, rows } = parseQuery(sessionQuery, c.req.query());
      const cmd = c.req.queries('cmd')?.filter((a) => a !== '') ?? [];
      if (cmd.length === 0) cmd.push('sh');
      await audit(c, app, instance, cmd, true);
      const start = () => deps.runtime.execInteractive(containerId, cmd, { tty: true, cols, rows }).catch(notRunning(app, instance));
      return bridge(start, deps.log.child({ app: app.name, instance: instance.id }));
    }),
  );

  return r;
}

/**
 * Joins a WebSocket and an exec session: binary frames are terminal bytes both ways, a text frame
 * `{"type":"resize"}` resizes, and the end of the process sends `{"type":"exit","code":N}`.
 */
function bridge(start: () => Promise<ExecSession>, log: ApiDeps['log']): WSEvents {
  let session: ExecSession | null = null;
  let closed = false;
  // Keystrokes and resizes that arrive while the session starts are applied once it has.
  const early: (Buffer | { cols: number; rows: number })[] = [];
  // In order: keystrokes sent after a resize wait for it (a `stty size` typed right after a resize
  // must see the new size; the resize is a call to the engine, the keystrokes are not).
  let inOrder: Promise<void> = Promise.resolve();
  let resizing = false;
  const apply = (s: ExecSession, input: Buffer | { cols: number; rows: number }): void => {
    if (Buffer.isBuffer(input)) {
      if (!resizing) s.stream.write(input);
      else inOrder = inOrder.then(() => void s.stream.write(input));
      return;
    }
    resizing = true;
    const done = inOrder
      .then(() => s.resize(input.cols, input.rows))
      .catch((err: unknown) => log.debug({ err }, 'resize failed'))
      .finally(() => {
        if (inOrder === done) resizing = false;
      });
    inOrder = done;
  };
  const sendJson = (ws: WSContext, value: unknown): void => {
    if (!closed) ws.send(JSON.stringify(value));
  };

  return {
    onOpen(_event, ws) {
      start().then(
        (s) => {
          if (closed) return s.close();
          session = s;
          for (const input of early.splice(0)) apply(s, input);
          s.stream.on('data', (chunk: Buffer) => {
            if (!closed) ws.send(new Uint8Array(chunk));
          });
          s.stream.on('error', (err) => log.debug({ err }, 'exec stream error'));
          s.wait().then(
            (code) => {
              sendJson(ws, { type: 'exit', code });
              ws.close(1000, 'process exited');
            },
            (err: unknown) => {
              log.warn({ err }, 'exec session failed');
              sendJson(ws, { type: 'error', error: errorOf(err) });
              ws.close(1011, 'exec failed');
            },
          );
        },
        (err: unknown) => {
          if (!isPierError(err) || err.status >= 500) log.warn({ err }, 'exec session failed to start');
          sendJson(ws, { type: 'error', error: errorOf(err) });
          ws.close(1011, 'exec failed');
        },
      );
    },
    onMessage(event) {
      let input: Buffer | { cols: number; rows: number };
      if (typeof event.data === 'string') {
        let parsed: unknown;
        try {
          parsed = JSON.parse(event.data);
        } catch {
          return;
        }
        const resize = resizeMessage.safeParse(parsed);
        if (!resize.success) return;
        input = { cols: resize.data.cols, rows: resize.data.rows };
      } else if (event.data instanceof ArrayBuffer) {
        input = Buffer.from(event.data);
      } else {
        return;
      }
      if (session) apply(session, input);
      else early.push(input);
    },
    onClose() {
      closed = true;
      session?.close();
    },
  };
}

function errorOf(err: unknown): { code: string; message: string; hint?: string } {
  if (isPierError(err)) return { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
  return { code: 'E_INTERNAL', message: 'the exec session failed; the server log has the details' };
}

describeRoute({
  method: 'post',
  path: '/v1/apps/:app/instances/:instance/exec',
  scope: 'exec',
  summary: 'Run a command in a running instance to completion: exit code, stdout, stderr (each kept up to 1 MiB)',
  body: execBody,
  response: execResultViewSchema,
  errors: [404, 409, 504],
});
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/instances/:instance/exec/ws',
  scope: 'exec',
  summary: 'An interactive session under a TTY over a WebSocket upgrade (query `cmd` repeated per argument); see docs/api.md for the protocol',
  query: sessionQuery,
  response: { type: 'string', description: 'a WebSocket (101 Switching Protocols)' },
  errors: [404, 409],
});
