// Every connection the CLI (and the edge of `pier server`) opens to the API goes through here: plain
// HTTP on loopback as before; HTTPS either checked against the system's CAs, or pinned to the
// certificate fingerprint `pier login --fingerprint` stored. The check runs on the TLS socket before
// it is handed to HTTP or WebSocket code, so no request (and no bearer token) is ever written to a
// server that failed it. Requests (apiFetch) and WebSockets (apiSocketOptions) share connectApi.
import { Agent, request } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { ClientOptions } from 'ws';
import { certificateFingerprint, fingerprintHex } from '../api/tls/certificate-fingerprint.js';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

/** Where the API is and, for a self-signed certificate, the fingerprint it must present. */
export interface ApiPeer {
  apiUrl: string;
  fingerprint?: string | undefined;
}

type Callback = (err: Error | null, socket?: Socket) => void;

/** One TLS connection to the API, handed on only once its certificate passed the check. */
export function connectApi(options: ConnectionOptions, fingerprint: string | undefined, callback: Callback): void {
  // No session resumption: every connection shows its certificate and is checked afresh.
  // (`path` here is the request's path, not a socket's.)
  const { session: _session, path: _path, ...rest } = options as ConnectionOptions & { path?: string };
  const host = rest.host ?? 'localhost';
  const servername = rest.servername || (isIP(host) ? undefined : host);
  const socket = connect({ ...rest, ...(servername ? { servername } : {}), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
  const onError = (err: Error): void => callback(err);
  socket.once('error', onError);
  socket.once('secureConnect', () => {
    socket.off('error', onError);
    const problem = checkPeer(socket, `${host.includes(':') ? `[${host}]` : host}:${rest.port ?? 443}`, fingerprint);
    if (problem) {
      socket.destroy();
      callback(problem);
      return;
    }
    callback(null, socket);
  });
}

function checkPeer(socket: TLSSocket, where: string, pinned: string | undefined): CliError | null {
  const raw = socket.getPeerCertificate()?.raw;
  const received = raw ? certificateFingerprint(raw) : 'none';
  if (pinned !== undefined) {
    if (received === pinned) return null;
    return new CliError('E_TLS_FINGERPRINT_MISMATCH', `the API at ${where} presented a certificate with fingerprint ${received}, not the pinned ${pinned}; nothing was sent`, {
      hint: `if its certificate was replaced on purpose, check the fingerprint \`pier server\` printed at start (also in its log, "api serves https") and run \`pier login --api URL --fingerprint\` with it; otherwise someone may be in between: do not log in`,
      details: { expected: pinned, received, expectedHex: fingerprintHex(pinned), receivedHex: fingerprintHex(received) },
      exitCode: EXIT.error,
    });
  }
  if (socket.authorized) return null;
  return new CliError('E_TLS_UNTRUSTED', `the API at ${where} presented a certificate this machine does not trust (${String(socket.authorizationError)}); its fingerprint is ${received}; nothing was sent`, {
    hint: `a self-signed Pier API prints its fingerprint at start ("pier: API certificate fingerprint SHA256:…"): compare, then run \`pier login --api URL --fingerprint SHA256:…\` with the printed value (PIER_API_FINGERPRINT for one command)`,
    details: { received, receivedHex: fingerprintHex(received) },
    exitCode: EXIT.error,
  });
}

/** An HTTPS agent whose new connections go through connectApi (idle ones are kept, unreferenced). */
class PinnedAgent extends Agent {
  constructor(private readonly fingerprint: string | undefined) {
    super({ keepAlive: true, maxCachedSessions: 0 });
  }

  // Node's agent takes the socket from the callback when this returns nothing.
  override createConnection(options: import('node:http').RequestOptions, callback?: (err: Error | null, stream: import('node:stream').Duplex) => void): undefined {
    connectApi(options as ConnectionOptions, this.fingerprint, (err, socket) => callback?.(err, socket as Socket));
    return undefined;
  }
}

const agents = new Map<string, PinnedAgent>();

function agentFor(fingerprint: string | undefined): PinnedAgent {
  const key = fingerprint ?? '';
  let agent = agents.get(key);
  if (!agent) agents.set(key, (agent = new PinnedAgent(fingerprint)));
  return agent;
}

/**
 * `fetch` towards the API. http:// URLs use the global fetch; https:// ones node:https through
 * connectApi, answered as a WHATWG Response so callers need not care which. A failed certificate
 * check rejects with its CliError; other network failures as fetch's do (TypeError, cause).
 */
export function apiFetch(peer: ApiPeer, url: string, init: RequestInit = {}): Promise<Response> {
  if (!url.startsWith('https:')) return fetch(url, init);
  return new Promise<Response>((resolve, reject) => {
    const method = init.method ?? 'GET';
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => {
      headers[name] = value;
    });
    const req = request(url, { method, headers, agent: agentFor(peer.fingerprint), ...(init.signal ? { signal: init.signal } : {}) });
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      const answer = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        for (const v of Array.isArray(value) ? value : value === undefined ? [] : [value]) answer.append(name, v);
      }
      const empty = method === 'HEAD' || status === 204 || status === 304;
      if (empty) res.resume();
      resolve(new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage ?? '', headers: answer }));
    });
    req.once('error', (err) => {
      if (err instanceof CliError || err.name === 'AbortError') reject(err);
      else reject(new TypeError('fetch failed', { cause: err }));
    });
    const body = init.body;
    if (body === undefined || body === null) req.end();
    else if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
    else if (body instanceof ReadableStream) {
      Readable.fromWeb(body as import('node:stream/web').ReadableStream).on('error', (err) => req.destroy(err)).pipe(req);
    } else reject(new TypeError(`apiFetch cannot send a body of type ${Object.prototype.toString.call(body)}`));
  });
}

/** Options for `new WebSocket(url, …)` to the API: wss:// connections go through connectApi. */
export function apiSocketOptions(peer: ApiPeer): Pick<ClientOptions, 'createConnection'> {
  if (!peer.apiUrl.startsWith('https:')) return {};
  return {
    createConnection: ((options: ConnectionOptions, callback: Callback) => {
      connectApi(options, peer.fingerprint, callback);
      return undefined;
    }) as unknown as ClientOptions['createConnection'],
  };
}
