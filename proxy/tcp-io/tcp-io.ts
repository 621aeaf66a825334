// The seam between the data plane and Node's TCP: a TcpHandle is one connected socket with the few
// operations a proxy needs (read with backpressure, write, half-close, close, addresses) and a
// TcpIo makes them (accept on a listening net.Server, connect out). Two implementations behind it:
// handle/ on Node's internal tcp_wrap handles (fastest; an internal API) and socket/ on net.Socket
// (public API); select-tcp-io.ts picks one at start. test/proxy/tcp-io/ holds their contract.

import type net from 'node:net';
import type tls from 'node:tls';
import type { PeerAddress } from '../peer-address.js';

export type TcpIoMode = 'handle' | 'socket';

/** What a handle's reads and writes report back to; set per handle by whoever holds it. */
export interface HandleOwner {
  /**
   * Bytes read. The owner may keep `buf`, unless it said `borrows`: then `buf` may be the handle's
   * read buffer, valid until the handle reads again, so the owner must either be done with it on
   * return or pause the handle until what it wrote from `buf` is flushed.
   */
  onData(handle: TcpHandle, buf: Buffer): void;
  /** True when onData may be given the handle's read buffer itself (see onData; a hint only). */
  readonly borrows: boolean;
  /** The peer sent its FIN. */
  onEnd(handle: TcpHandle): void;
  /** A read or write failed (ECONNRESET, EPIPE ...); `code` is the system error name. */
  onError(handle: TcpHandle, code: string): void;
  /**
   * Everything written to `handle` is now with the kernel: follows every write that left bytes
   * queued (writeQueueSize > 0 after it), whether it returned false or not. A connection whose
   * both FINs are in waits for it to close the side it still owes bytes.
   */
  onFlushed(handle: TcpHandle): void;
}

/** Counts the accepted handles of a listener that are still open. */
export interface HandleHome {
  handleClosed(): void;
}

/** One TCP connection. Events go to `owner`; none arrives once `close()` was called. */
export interface TcpHandle {
  /** Who gets this handle's events: whoever takes the handle over sets it. */
  owner: HandleOwner | undefined;
  /** The listener that accepted this handle, told when it closes (unset for outgoing ones). */
  home: HandleHome | undefined;
  /** Bytes written that the kernel has not taken yet. */
  readonly writeQueueSize: number;
  /** True while reading is paused (see pause). */
  readonly paused: boolean;
  /** Starts reading, or resumes after pause(). Handles start out not reading. */
  readStart(): void;
  /** Stops reading until readStart(): backpressure while what this side sent is still queued. */
  pause(): void;
  /**
   * Writes `buf`; false when the sender should pause (not all of it reached the kernel, or, for the
   * cleartext of a TLSSocket, its stream's buffer is full). owner.onFlushed follows either way
   * when bytes were left queued.
   */
  write(buf: Buffer): boolean;
  /** Writes `chunks` in order, in one system call where the kernel takes them; returns as write(). */
  writev(chunks: Buffer[]): boolean;
  /** Sends our FIN once every queued write has left. */
  shutdown(): void;
  /**
   * Closes now; queued writes are dropped; runs once. `bufferInUse`: a write queued on another
   * handle still points into bytes this handle lent its (borrowing) owner.
   */
  close(bufferInUse?: boolean): void;
  /** The peer's address; null when the peer is already gone (reset before we asked). */
  remoteAddress(): PeerAddress | null;
  /** This end's address (the one a client reached on a wildcard listener); null as above. */
  localAddress(): PeerAddress | null;
  /**
   * Hands the connection, not read yet, to a net.Socket that node:tls can wrap natively (its TLS
   * then reads and writes the TCP handle in C++, with no JS stream beneath). This handle is spent:
   * no more events, close() does nothing, the addresses still answer; the listener's count drops
   * when the socket closes. Absent where the implementation cannot.
   */
  toSocket?(): net.Socket;
  /**
   * After toSocket() and a completed TLS handshake on a TLSSocket over that socket: the cleartext
   * side as a TcpHandle on node:tls's native stream, without the TLSSocket's streams.
   */
  cleartext?(socket: tls.TLSSocket): TcpHandle;
  /**
   * Starts a TLS server handshake on this connection (not read yet) natively, without a
   * tls.TLSSocket: for one certificate, no client certificates, no SNI callback. This handle is
   * spent as with toSocket(). Absent where the implementation cannot.
   */
  tlsServer?(context: tls.SecureContext, alpnWire: Buffer | undefined, events: TlsHandshakeEvents): TlsServerHandshake;
}

/** What a tlsServer() handshake reports to; at most one of the two, once. */
export interface TlsHandshakeEvents {
  secure(): void;
  /** `code` is OpenSSL's (ERR_SSL_...), a system error name, or 'closed' for an EOF. */
  failed(code: string, err: Error | null): void;
}

/** A handshake started by tlsServer(). */
export interface TlsServerHandshake {
  /** The name the client sent (SNI), the protocol agreed by ALPN, the TLS version, the cipher. */
  readonly serverName: string | null;
  readonly alpnProtocol: string | null;
  readonly protocol: string;
  readonly cipher: string;
  readonly reused: boolean;
  /** After secure(): the cleartext side as a TcpHandle (once). */
  secured(): TcpHandle;
  /** Ends a handshake not completed; closes the connection. */
  destroy(): void;
}

/** Gets 0 errors as null, or the system error name (ECONNREFUSED ...); never called synchronously. */
export type ConnectDone = (handle: TcpHandle, error: string | null) => void;

export interface TcpIo {
  readonly mode: TcpIoMode;
  /**
   * Takes over accepting for a net.Server that is listening and was created with
   * `pauseOnConnect: true`: each connection arrives as a handle, not reading, TCP_NODELAY set.
   * Count open connections with HandleHome: whether `server.close()` waits for them differs.
   */
  accept(server: net.Server, onHandle: (handle: TcpHandle) => void, onError: (code: string) => void): void;
  /** A new handle owned by `owner`, connecting to `address:port` (an IP literal), TCP_NODELAY set. */
  connect(owner: HandleOwner, address: string, port: number, done: ConnectDone): TcpHandle;
}
