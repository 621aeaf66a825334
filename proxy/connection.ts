// One proxied TCP connection: a flat object holding both sockets, driven by shared module-level
// handlers (no closures per connection). Until the backend accepts, the client's bytes are kept so
// a refused or timed-out connect can be retried on another backend without losing any of them.

import net, { type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Backend, BackendConnection } from './backend.js';
import type { PeerAddress } from './peer-address.js';
import { buildProxyHeader } from './proxy-header.js';
import type { Route } from './route-table.js';

export interface ConnectionOptions {
  connectTimeoutMs: number;
  /** Backends tried per connection, each at most once. */
  maxConnectAttempts: number;
  log: Logger;
}

// Errors that mean "this backend did not take the connection": safe to try another one.
const RETRYABLE = new Set(['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

const CONNECTION = Symbol('pier.connection');
type Tagged = Socket & { [CONNECTION]?: Connection | undefined };

/**
 * Proxies `client` to a backend picked from `route`. `source` is the client's real address and
 * `destination` the address:port it reached; both go into the PROXY header when the endpoint asks.
 * With no backend available the client is closed.
 */
export function startConnection(
  client: Socket,
  route: Route,
  source: PeerAddress,
  destination: PeerAddress,
  options: ConnectionOptions,
): Connection | undefined {
  const backend = route.balancer.pick();
  if (backend === undefined) {
    client.destroy();
    return undefined;
  }
  const connection = new Connection(client, route, buildProxyHeader(route.endpoint.proxyProtocol, source, destination), options);
  (client as Tagged)[CONNECTION] = connection;
  // noDelay and allowHalfOpen come from the listening server's options.
  client.on('data', onClientData);
  client.on('end', onClientEnd);
  client.on('drain', onClientDrain);
  client.on('error', onError);
  client.on('close', onClientClose);
  connection.connect(backend);
  return connection;
}

export class Connection implements BackendConnection {
  backendSocket: Tagged | null = null;
  backend: Backend | null = null;
  /** Client bytes sent while the backend connect is in flight; null once connected. */
  replay: Buffer[] | null = [];
  tried: Backend[] | null = null;
  connected = false;
  clientEnded = false;
  backendEnded = false;
  /** Sockets of this connection not yet closed; the backend is released at zero. */
  open = 2;

  constructor(
    readonly client: Tagged,
    readonly route: Route,
    readonly header: Buffer | null,
    readonly options: ConnectionOptions,
  ) {}

  destroy(): void {
    this.client.destroy();
    this.backendSocket?.destroy();
  }

  connect(backend: Backend): void {
    this.backend = backend;
    backend.acquire(this);
    const socket: Tagged = net.connect({ host: backend.address, port: backend.port, allowHalfOpen: true, noDelay: true });
    socket[CONNECTION] = this;
    this.backendSocket = socket;
    socket.setTimeout(this.options.connectTimeoutMs);
    socket.on('connect', onBackendConnect);
    socket.on('data', onBackendData);
    socket.on('end', onBackendEnd);
    socket.on('drain', onBackendDrain);
    socket.on('timeout', onBackendTimeout);
    socket.on('error', onError);
    socket.on('close', onBackendClose);
    // Node queues writes made while connecting and flushes them in order once connected, so the
    // header goes out first, ahead of any client byte.
    let writable = true;
    if (this.header !== null) writable = socket.write(this.header);
    for (const chunk of this.replay ?? []) writable = socket.write(chunk);
    if (this.clientEnded) socket.end();
    if (writable && this.client.isPaused()) this.client.resume();
  }

  /** The backend did not accept: try the next one, or close the client when none is left. */
  failover(code: string): void {
    const socket = this.backendSocket!;
    const backend = this.backend!;
    socket[CONNECTION] = undefined;
    socket.destroy();
    backend.connectFailures++;
    backend.release(this);
    const tried = (this.tried ??= []);
    tried.push(backend);
    const next = tried.length < this.options.maxConnectAttempts ? this.route.balancer.pick(tried) : undefined;
    this.options.log.debug(
      { endpoint: this.route.endpoint.id, backend: backend.id, code, retry: next?.id ?? null },
      'backend connect failed',
    );
    if (next !== undefined) {
      this.connect(next);
      return;
    }
    this.backendSocket = null;
    this.backend = null;
    this.open--;
    this.client.destroy();
  }

  /** Both FINs seen: close each side once what we still owe it is flushed (saves a shutdown). */
  finish(): void {
    closeWhenFlushed(this.client);
    if (this.backendSocket !== null) closeWhenFlushed(this.backendSocket);
  }

  socketClosed(other: Socket | null): void {
    this.open--;
    if (this.open === 0) {
      this.backend?.release(this);
      this.backend = null;
      return;
    }
    // After both FINs the other side is only flushing what it owes; otherwise it is cut.
    if (other !== null && !(this.clientEnded && this.backendEnded)) other.destroy();
  }
}

function onClientData(this: Tagged, chunk: Buffer): void {
  const c = this[CONNECTION];
  if (c === undefined || c.backendSocket === null) return;
  if (c.replay !== null) c.replay.push(chunk);
  if (!c.backendSocket.write(chunk)) this.pause();
}

function onBackendData(this: Tagged, chunk: Buffer): void {
  const c = this[CONNECTION];
  if (c !== undefined && !c.client.write(chunk)) this.pause();
}

function onClientDrain(this: Tagged): void {
  this[CONNECTION]?.backendSocket?.resume();
}

function onBackendDrain(this: Tagged): void {
  this[CONNECTION]?.client.resume();
}

function onClientEnd(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.clientEnded = true;
  if (c.backendEnded) c.finish();
  else c.backendSocket?.end();
}

function onBackendEnd(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.backendEnded = true;
  if (c.clientEnded) c.finish();
  else c.client.end();
}

function onBackendConnect(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.connected = true;
  c.replay = null;
  c.tried = null;
  this.setTimeout(0);
}

function onBackendTimeout(this: Tagged): void {
  const c = this[CONNECTION];
  if (c !== undefined && !c.connected && !c.client.destroyed) c.failover('ETIMEDOUT');
}

function onError(this: Tagged, err: NodeJS.ErrnoException): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  if (this === c.backendSocket && !c.connected && !c.client.destroyed && RETRYABLE.has(err.code ?? '')) {
    c.failover(err.code ?? 'ERROR');
  }
  // Otherwise 'close' follows and cuts the other side.
}

function onClientClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  this[CONNECTION] = undefined;
  c.socketClosed(c.backendSocket);
}

function onBackendClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  this[CONNECTION] = undefined;
  c.socketClosed(c.client);
}

function closeWhenFlushed(socket: Socket): void {
  if (socket.writableLength === 0) socket.destroy();
  else if (!socket.writableEnded) socket.end();
}
