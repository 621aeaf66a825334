// The API server's side of the wire to one node agent: JSON calls and the two streams (a send's
// response body, a receive's request body), over plain HTTP on the nodes' private network. A new
// connection per call: calls are few and long (a copy, a stream), and no idle connection can be
// closed under a call. Whatever goes wrong becomes a PierError naming the agent: unreachable
// (E_AGENT_UNREACHABLE, also a connect that takes over 10 s), a stream cut off (E_AGENT_STREAM), an
// answer that is not the agent's (E_AGENT_PROTOCOL), or the agent's own coded error.
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { PierError } from '../pier-error.js';
import type { AgentErrorBody } from './agent-protocol.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface AgentTransport {
  readonly url: string;
  /** A JSON call; resolves with the answer's JSON, or rejects with a coded error. */
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** A request whose body the caller writes (a receive); `response` settles with the answer. */
  upload(method: string, path: string): { request: ClientRequest; response: Promise<IncomingMessage> };
  /** A request whose answer is a stream (a send, an export), with an optional small JSON body. */
  download(method: string, path: string, body?: unknown): { request: ClientRequest; response: Promise<IncomingMessage> };
  /** An answer's JSON when it is 2xx, else its error as a PierError. */
  answer<T>(res: IncomingMessage): Promise<T>;
  /** The JSON error an answer that is not 2xx holds, as a PierError. */
  failure(res: IncomingMessage): Promise<PierError>;
  /** A transport failure of this agent (connection refused, reset, timed out). */
  unreachable(err: unknown): PierError;
  agentError(error: AgentErrorBody['error'], status: number): PierError;
}

export function createAgentTransport(url: string, token: string): AgentTransport {
  const base = new URL(url);
  const headers = { authorization: `Bearer ${token}` };

  function unreachable(err: unknown): PierError {
    if (err instanceof PierError) return err;
    const e = err as NodeJS.ErrnoException;
    return new PierError('E_AGENT_UNREACHABLE', `the node agent at ${url} cannot be reached: ${e.code ?? e.message}`, {
      status: 503,
      hint: 'check that `pier agent` runs on that node, listens on that address, and that this machine reaches it (firewall)',
      cause: err,
    });
  }

  function agentError(error: AgentErrorBody['error'], status: number): PierError {
    // The agent refusing our token, or not knowing a route, is this server's set-up, not the caller's request.
    const ours = error.code === 'E_AGENT_UNAUTHENTICATED' || error.code === 'E_AGENT_ROUTE_NOT_FOUND';
    return new PierError(error.code, `node agent ${url}: ${error.message}`, { status: ours ? 502 : status, hint: error.hint });
  }

  function open(method: string, path: string, extra: Record<string, string | number> = {}): { request: ClientRequest; response: Promise<IncomingMessage> } {
    const req = request(new URL(path, base), { method, agent: false, headers: { ...headers, ...extra } });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.on('error', (err) => reject(unreachable(err)));
    });
    response.catch(() => undefined); // the caller awaits it; not unhandled meanwhile
    // Bounded: a connect that hangs (an address nothing answers on). Once connected, a call may rightly take long.
    req.once('socket', (socket) => {
      socket.setTimeout(CONNECT_TIMEOUT_MS, () => req.destroy(Object.assign(new Error(`no connection in ${CONNECT_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      socket.once('connect', () => socket.setTimeout(0));
    });
    return { request: req, response };
  }

  async function readJson(res: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of res) chunks.push(chunk as Buffer);
    } catch (err) {
      throw unreachable(err);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new PierError('E_AGENT_PROTOCOL', `the answer from ${url} (HTTP ${res.statusCode}) is not a node agent's JSON: ${text.slice(0, 200)}`, {
        status: 502,
        hint: 'check that the URL names `pier agent` (not another service) and that both run the same Pier version',
      });
    }
  }

  async function failure(res: IncomingMessage): Promise<PierError> {
    const body = (await readJson(res).catch((err: unknown) => err)) as AgentErrorBody | PierError;
    if (body instanceof PierError) return body;
    if (typeof body?.error?.code !== 'string' || typeof body.error.message !== 'string') {
      return new PierError('E_AGENT_PROTOCOL', `the answer from ${url} (HTTP ${res.statusCode}) is not a node agent's error`, { status: 502, hint: 'check that the URL names `pier agent`' });
    }
    return agentError(body.error, res.statusCode ?? 500);
  }

  async function answer<T>(res: IncomingMessage): Promise<T> {
    if ((res.statusCode ?? 0) >= 300) throw await failure(res);
    return (await readJson(res)) as T;
  }

  return {
    url,
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const { request: req, response } = open(method, path, data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
      req.end(data);
      return answer<T>(await response);
    },
    // Keep-alive, though the socket is used once: an agent that refuses a file early answers while
    // the upload goes on, and on a `Connection: close` request it would then close the socket with
    // the rest arriving; the reset can beat its answer here (an EPIPE instead of the reason). So
    // the agent drops the rest and keeps the connection until this side, with the answer, ends it.
    upload: (method, path) => open(method, path, { 'content-type': 'application/octet-stream', connection: 'keep-alive' }),
    download(method, path, body) {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const opened = open(method, path, data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
      opened.request.end(data);
      return opened;
    },
    answer,
    failure,
    unreachable,
    agentError,
  };
}
