// TcpIo on net.Socket: only Node's public API, so it runs wherever Node does (under
// `node --permission`, with --pending-deprecation, on a Node whose internals moved). Slower per
// connection than handle/ (a stream and its events per socket; docs/benchmarks.md). Events are
// routed by shared functions through a symbol on the socket: no closure per connection, except
// the one write callback per handle that tells when the write queue runs empty.

import net from 'node:net';
import { normalizeIp, type PeerAddress } from '../../peer-address.js';
import type { ConnectDone, HandleHome, HandleOwner, TcpHandle, TcpIo } from '../tcp-io.js';

const HANDLE = Symbol('pier.tcpHandle');
/** The listener to tell when a socket given away by toSocket() closes. */
const HOME = Symbol('pier.handleHome');

type RoutedSocket = net.Socket & { [HANDLE]?: SocketHandle; [HOME]?: HandleHome };

export const socketIo: TcpIo = {
  mode: 'socket',
  accept(server, onHandle, onError) {
    server.on('connection', (socket: net.Socket) => {
      // The server was made with pauseOnConnect and noDelay: the socket is not read yet.
      onHandle(new SocketHandle(socket, undefined));
    });
    // Accept errors (EMFILE ...) arrive as the server's 'error' events.
    server.on('error', (err: NodeJS.ErrnoException) => {
      if (err.syscall === 'accept') onError(err.code ?? err.message);
    });
  },
  connect(owner, address, port, done) {
    const socket = new net.Socket({ allowHalfOpen: true });
    socket.setNoDelay(true);
    const handle = new SocketHandle(socket, owner);
    handle.connecting = done;
    socket.once('connect', onConnect);
    // An IP literal: no DNS lookup; errors before 'connect' go to `done` (see onError).
    socket.connect({ host: address, port });
    return handle;
  },
};

class SocketHandle implements TcpHandle {
  home: HandleHome | undefined = undefined;
  paused = false;
  /** Set while an outgoing connect is in flight. */
  connecting: ConnectDone | undefined = undefined;
  /** A write returned false: tell the owner once the queue is empty. */
  private flushWanted = false;
  /** 'data' is listened to from the first readStart (a 'data' listener starts the stream flowing). */
  private reading = false;
  private closed = false;
  private readonly written: (err?: Error | null) => void;

  constructor(
    readonly socket: RoutedSocket,
    public owner: HandleOwner | undefined,
  ) {
    socket[HANDLE] = this;
    socket.on('end', onEnd);
    socket.on('error', onError);
    this.written = (err) => {
      if (err != null || !this.flushWanted || this.socket.writableLength !== 0) return;
      this.flushWanted = false;
      this.owner?.onFlushed(this);
    };
  }

  get writeQueueSize(): number {
    return this.socket.writableLength;
  }

  readStart(): void {
    this.paused = false;
    if (!this.reading) {
      this.reading = true;
      this.socket.on('data', onData);
    }
    this.socket.resume();
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  write(buf: Buffer): boolean {
    const socket = this.socket;
    socket.write(buf, this.written);
    // A write the kernel took at once has already left the queue (net.Socket writes synchronously).
    if (socket.writableLength === 0) return true;
    this.flushWanted = true;
    return false;
  }

  writev(chunks: Buffer[]): boolean {
    if (chunks.length === 1) return this.write(chunks[0]!);
    const socket = this.socket;
    // Corked writes leave in one writev when uncorked.
    socket.cork();
    for (const chunk of chunks) socket.write(chunk, this.written);
    socket.uncork();
    if (socket.writableLength === 0) return true;
    this.flushWanted = true;
    return false;
  }

  shutdown(): void {
    this.socket.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const home = this.home;
    this.owner = undefined;
    this.home = undefined;
    this.connecting = undefined;
    this.socket.destroy();
    home?.handleClosed();
  }

  toSocket(): net.Socket {
    const socket = this.socket;
    const home = this.home;
    this.closed = true;
    this.owner = undefined;
    this.home = undefined;
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.off('data', onData);
    if (home !== undefined) {
      socket[HOME] = home;
      socket.once('close', onSocketClosed);
    }
    return socket;
  }

  remoteAddress(): PeerAddress | null {
    const { remoteAddress: address, remotePort: port } = this.socket;
    return address === undefined || port === undefined ? null : { address: normalizeIp(address), port };
  }

  localAddress(): PeerAddress | null {
    const { localAddress: address, localPort: port } = this.socket;
    return address === undefined || port === undefined ? null : { address: normalizeIp(address), port };
  }
}

function onSocketClosed(this: RoutedSocket): void {
  const home = this[HOME];
  this[HOME] = undefined;
  home?.handleClosed();
}

function onConnect(this: RoutedSocket): void {
  const handle = this[HANDLE]!;
  const done = handle.connecting;
  handle.connecting = undefined;
  done?.(handle, null);
}

function onData(this: RoutedSocket, buf: Buffer): void {
  const handle = this[HANDLE]!;
  handle.owner?.onData(handle, buf);
}

function onEnd(this: RoutedSocket): void {
  const handle = this[HANDLE]!;
  handle.owner?.onEnd(handle);
}

function onError(this: RoutedSocket, err: NodeJS.ErrnoException): void {
  const handle = this[HANDLE]!;
  const code = err.code ?? 'EIO';
  const done = handle.connecting;
  if (done !== undefined) {
    // The connect failed: that is the connect's answer, not an error of an open connection.
    handle.connecting = undefined;
    done(handle, code);
    return;
  }
  handle.owner?.onError(handle, code);
}
