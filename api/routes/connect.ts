// Tunnels to an app's instances: `GET …/connect` says where a tunnel would go (the CLI asks it
// before it listens, so a refused token fails at once), and `GET …/connect/ws` carries one TCP
// connection over one WebSocket (proxy/websocket-tunnel.ts has the framing). The API connects to
// the container at its address on Pier's network, so private endpoints are reachable this way
// only. Each session, refused ones included, is an `audit.session` event once it ends.
import type { IncomingMessage } from 'node:http';
import { Hono, type Context } from 'hono';
import { upgradeWebSocket } from '@hono/node-server';
import type { WSEvents } from 'hono/ws';
import type WebSocket from 'ws';
import { z } from 'zod';
import { buildProxyHeader } from '../../proxy/proxy-header.js';
import { normalizeIp } from '../../proxy/peer-address.js';
import { joinTunnel, type TunnelError } from '../../proxy/websocket-tunnel.js';
import type { ApiDeps } from '../api-deps.js';
import type { ApiEnv, AuthContext } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { parseQuery } from '../request.js';
import { resolveTunnelTarget, type TunnelTarget } from '../tunnel-target.js';
import { websocketGuard } from './websocket-guard.js';

const KINDS = ['port-forward', 'connect'] as const;
/** Without traffic for this long a tunnel is closed, unless the endpoint or the client says otherwise. */
const DEFAULT_IDLE_MS = 15 * 60_000;

const targetQuery = z.object({
  port: z.coerce.number().int().min(1).max(65535).describe("the endpoint's port (REMOTE); with `instance`, any port of that container"),
  instance: z.string().min(1).max(100).optional().describe('the instance to reach; by default a running one of the endpoint\'s process, picked per connection'),
});
const sessionQuery = targetQuery.extend({
  kind: z.enum(KINDS).default('port-forward').describe('how the audit trail names the session'),
  idleTimeout: z.coerce.number().int().min(1).max(86_400).optional().describe("seconds without a byte either way before the tunnel closes (default: the endpoint's idle_timeout, else 900)"),
});

const targetViewSchema = z.object({
  app: z.string(),
  port: z.number(),
  endpoint: z.string().nullable().describe('the endpoint id, or null for a container port of a named instance'),
  access: z.enum(['public', 'private']).nullable(),
  process: z.string(),
  instance: z.string().describe('the instance a tunnel opened now would reach (others may be picked per connection)'),
  target: z.number().describe('the port in the container'),
  proxyProtocol: z.enum(['none', 'v1', 'v2']),
});
export type TunnelTargetView = z.infer<typeof targetViewSchema>;

describeRoute({
  method: 'get',
  path: '/v1/apps/:app/connect',
  scope: 'connect',
  summary: 'Where a tunnel to port `port` would go, checking the token may open one (what `pier port-forward` asks before it listens)',
  query: targetQuery,
  response: targetViewSchema,
  errors: [404, 409],
});
describeRoute({
  method: 'get',
  path: '/v1/apps/:app/connect/ws',
  scope: 'connect',
  summary: 'One TCP connection to an instance over a WebSocket upgrade: binary frames are bytes, text frames `{"type":"end"}` (half-close) and `{"type":"error"}`; see docs/api.md',
  query: sessionQuery,
  response: { type: 'string', description: 'a WebSocket (101 Switching Protocols)' },
  errors: [404, 409],
});

export function connectRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.get('/apps/:app/connect', async (c) => {
    const q = parseQuery(targetQuery, c.req.query());
    const t = await resolveTunnelTarget(deps.db, c.get('auth'), c.req.param('app'), q.port, q.instance);
    const view: TunnelTargetView = {
      app: t.app.name,
      port: q.port,
      endpoint: t.endpoint?.id ?? null,
      access: t.endpoint?.access ?? null,
      process: t.instance.process,
      instance: t.instance.id,
      target: t.port,
      proxyProtocol: t.proxyProtocol,
    };
    return c.json(view);
  });

  r.get(
    '/apps/:app/connect/ws',
    // A refused tunnel is part of the trail too (who tried to reach what).
    websocketGuard('use `pier port-forward` or `pier connect`', async (c, err, started) => {
      const auth = c.get('auth');
      const q = c.req.query();
      await record(deps, auth, {
        kind: q.kind === 'connect' ? 'connect' : 'port-forward',
        appName: c.req.param('app') ?? '',
        appId: null,
        instanceId: null,
        port: Number(q.port) || null,
        target: null,
        source: sourceOf(c),
        status: err.status,
        error: { code: err.code, message: err.message },
        bytesIn: 0,
        bytesOut: 0,
        durationMs: Date.now() - started,
      });
    }),
    upgradeWebSocket(async (c) => {
      const q = parseQuery(sessionQuery, c.req.query());
      const auth = c.get('auth');
      const target = await resolveTunnelTarget(deps.db, auth, c.req.param('app') ?? '', q.port, q.instance);
      const incoming = (c.env as { incoming?: IncomingMessage }).incoming;
      const client = { address: normalizeIp(incoming?.socket.remoteAddress ?? '0.0.0.0'), port: incoming?.socket.remotePort ?? 0 };
      const local = { address: normalizeIp(incoming?.socket.localAddress ?? '0.0.0.0'), port: q.port };
      const idleMs = (q.idleTimeout ?? 0) * 1000 || target.endpoint?.idleTimeoutMs || DEFAULT_IDLE_MS;
      return session(deps, auth, target, { kind: q.kind, remote: q.port, client, local, idleMs });
    }),
  );

  return r;
}

interface SessionOptions {
  kind: (typeof KINDS)[number];
  remote: number;
  client: { address: string; port: number };
  local: { address: string; port: number };
  idleMs: number;
}

function session(deps: ApiDeps, auth: AuthContext, t: TunnelTarget, o: SessionOptions): WSEvents {
  const log = deps.log.child({ app: t.app.name, instance: t.instance.id, tunnel: o.kind });
  const started = Date.now();
  return {
    onOpen(_event, ctx) {
      const ws = ctx.raw as WebSocket;
      // Nothing is read from the client until the instance answers; TCP holds its bytes meanwhile.
      ws.pause();
      const gone = (err: Error | null): TunnelError => ({
        code: 'E_INSTANCE_GONE',
        message: `the connection to instance ${t.instance.id} (${t.address}:${t.port}) ended${err ? `: ${(err as NodeJS.ErrnoException).code ?? err.message}` : ' without a close'}`,
        hint: `the instance may have stopped or restarted: \`pier status --app ${t.app.name}\`; open the tunnel again`,
      });
      void (async () => {
        let bytes = { in: 0, out: 0 };
        let error: TunnelError | null = null;
        try {
          const socket = await deps.runtime.connect(t.address, t.port, { timeoutMs: 10_000, allowHalfOpen: true });
          // The app sees the CLI user's address as the API sees it, and the endpoint's port.
          const header = buildProxyHeader(t.proxyProtocol, o.client, o.local);
          if (header) socket.write(header);
          ws.resume();
          const result = await joinTunnel(socket, ws, { idleTimeoutMs: o.idleMs, socketError: gone });
          bytes = { in: result.bytesFromPeer, out: result.bytesToPeer };
          error = result.error;
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          error = { code: 'E_INSTANCE_UNREACHABLE', message: `cannot connect to instance ${t.instance.id} at ${t.address}:${t.port}: ${e.code ?? e.message}`, hint: 'is the app listening on that port? `pier logs` shows what it wrote' };
          if (ws.readyState === ws.OPEN) {
            ws.send(JSON.stringify({ type: 'error', error }));
            ws.close(1011, 'instance unreachable');
          }
        }
        if (error && error.code !== 'E_TUNNEL_IDLE') log.info({ code: error.code }, 'tunnel ended with an error');
        await record(deps, auth, {
          kind: o.kind,
          appName: t.app.name,
          appId: t.app.id,
          instanceId: t.instance.id,
          port: o.remote,
          target: t.port,
          source: o.client.address,
          status: 101,
          error,
          bytesIn: bytes.in,
          bytesOut: bytes.out,
          durationMs: Date.now() - started,
        });
      })();
    },
  };
}

interface SessionRecord {
  kind: (typeof KINDS)[number];
  appName: string;
  appId: string | null;
  instanceId: string | null;
  port: number | null;
  target: number | null;
  source: string;
  status: number;
  error: { code: string; message: string } | null;
  /** Client → app, and app → client. */
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
}

/** The session in the audit trail; a trail that cannot be written is logged, never thrown. */
async function record(deps: ApiDeps, auth: AuthContext | undefined, s: SessionRecord): Promise<void> {
  if (!auth) return;
  const who = `${auth.tokenName ?? 'token'} (${auth.tokenId}) from ${s.source}`;
  const what = s.status === 101 ? `${s.kind} to ${s.appName}:${s.port ?? '?'}${s.instanceId ? ` (${s.instanceId})` : ''}: ${s.bytesIn} B in, ${s.bytesOut} B out` : `${s.kind} to ${s.appName}:${s.port ?? '?'} refused`;
  try {
    await deps.events.record({
      orgId: auth.orgId,
      appId: s.appId,
      instanceId: s.instanceId,
      type: 'audit.session',
      reason: s.error?.code ?? 'closed',
      message: `${who}: ${what} in ${s.durationMs} ms${s.error ? ` (${s.error.code})` : ''}`.slice(0, 500),
      data: {
        kind: s.kind,
        token: { id: auth.tokenId, name: auth.tokenName ?? null, scope: auth.scope },
        source: s.source,
        app: s.appName,
        instance: s.instanceId,
        port: s.port,
        target: s.target,
        status: s.status,
        errorCode: s.error?.code ?? null,
        error: s.error?.message ?? null,
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
        durationMs: s.durationMs,
      },
    });
  } catch (err) {
    deps.log.warn({ err, kind: s.kind }, 'audit event not recorded');
  }
}

function sourceOf(c: Context<ApiEnv>): string {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ? normalizeIp(incoming.socket.remoteAddress) : 'unknown';
}
