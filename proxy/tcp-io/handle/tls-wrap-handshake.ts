// A TLS server handshake run on node's native TLSWrap over an accepted TCP handle, without a
// tls.TLSSocket (and its net.Socket, streams, listeners and timers) per connection: the TLSWrap is
// made with the tls_wrap binding and its few callbacks are set here. Made by
// BindingHandle.tlsServer() for the plain case only (one certificate, no client certificates, no
// SNI callback); tls/tls-termination.ts uses a TLSSocket for the rest. Once the handshake is done,
// secured() turns the same TLSWrap into the connection's cleartext TcpHandle (tls-wrap-handle.ts).

import tls from 'node:tls';
import { getSystemErrorName } from 'node:util';
import type { HandleHome, TcpHandle, TlsHandshakeEvents, TlsServerHandshake } from '../tcp-io.js';
import { TlsWrapHandle, type NativeTls } from './tls-wrap-handle.js';

/** The tls_wrap binding's TLSWrap, as this file uses it during the handshake. */
export interface HandshakeTls extends NativeTls {
  onhandshakestart: (this: HandshakeTls, now: number) => void;
  onhandshakedone: (this: HandshakeTls) => void;
  onerror: (this: HandshakeTls, err: NodeJS.ErrnoException) => void;
  setALPNProtocols(wire: Buffer): void;
  destroySSL(): void;
  getServername(): string | false | undefined;
  getALPNNegotiatedProtocol(): string | false | undefined;
  getProtocol(): string | null | undefined;
  getCipher(): { name?: string } | undefined;
  isSessionReused(): boolean;
  pierShake?: TlsWrapHandshake;
  /** When the last handshake on this connection started (ms), and the renegotiations counted since. */
  pierLastStart?: number;
  pierRenegotiations?: number;
}

/** The native TCP handle beneath, as far as closing it goes. */
export interface ClosableTcp {
  close(callback?: () => void): void;
}

type TlsWrapBinding = { wrap(stream: object, context: object, isServer: boolean, hasActiveWrite: boolean): HandshakeTls };

/** Null when this Node's tls_wrap binding lacks what is used here (node:tls's TLSSocket is used then). */
export const tlsWrapBinding: TlsWrapBinding | null = loadBinding();
const state = (process as unknown as { binding(name: string): { streamBaseState: Int32Array; kReadBytesOrError: number } }).binding('stream_wrap');
const UV_EOF = -4095;

export class TlsWrapHandshake implements TlsServerHandshake {
  private done = false;

  constructor(
    readonly native: HandshakeTls,
    private readonly tcp: ClosableTcp,
    private home: HandleHome | undefined,
    private readonly events: TlsHandshakeEvents,
  ) {}

  /** Wraps `tcp` (not reading yet, given away by the caller) and starts reading the hello. */
  static start(tcp: ClosableTcp, home: HandleHome | undefined, context: tls.SecureContext, alpnWire: Buffer | undefined, events: TlsHandshakeEvents): TlsWrapHandshake {
    const native = tlsWrapBinding!.wrap(tcp, (context as unknown as { context: object }).context, true, false);
    const shake = new TlsWrapHandshake(native, tcp, home, events);
    native.pierShake = shake;
    native.onread = onHandshakeRead;
    native.onhandshakestart = onHandshakeStart;
    native.onhandshakedone = onHandshakeDone;
    native.onerror = onHandshakeError;
    if (alpnWire !== undefined) native.setALPNProtocols(alpnWire);
    native.readStart();
    return shake;
  }

  /** The server name the client sent (SNI), or null. */
  get serverName(): string | null {
    const name = this.native.getServername();
    return typeof name === 'string' && name !== '' ? name : null;
  }

  get alpnProtocol(): string | null {
    const p = this.native.getALPNNegotiatedProtocol();
    return typeof p === 'string' ? p : null;
  }

  get protocol(): string {
    return this.native.getProtocol() ?? 'unknown';
  }

  get cipher(): string {
    return this.native.getCipher()?.name ?? 'unknown';
  }

  get reused(): boolean {
    return this.native.isSessionReused();
  }

  /** After secure(): the cleartext side; this handshake's callbacks go to the new handle. */
  secured(): TcpHandle {
    this.done = true;
    this.native.pierShake = undefined;
    const home = this.home;
    this.home = undefined;
    return new TlsWrapHandle(this.native, () => this.closeNative(home));
  }

  /** Ends a handshake that has not completed (timeout, failure, the edge closing). */
  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.native.pierShake = undefined;
    const home = this.home;
    this.home = undefined;
    this.closeNative(home);
  }

  /** Closes the TCP handle beneath, then frees the SSL (what TLSWrap's JS close does for a TLSSocket). */
  private closeNative(home: HandleHome | undefined): void {
    const native = this.native;
    this.tcp.close(() => {
      native.destroySSL();
      home?.handleClosed();
    });
  }

  /** @internal the TLSWrap's callbacks, while the handshake runs. */
  handshakeDone(): void {
    if (!this.done) this.events.secure();
  }

  /** @internal */
  fail(code: string, err: Error | null): void {
    if (!this.done) this.events.failed(code, err);
  }
}

function onHandshakeRead(this: HandshakeTls): void {
  const n = state.streamBaseState[state.kReadBytesOrError]!;
  // Cleartext before the handshake is done cannot come; an EOF or a reset ends the handshake.
  if (n < 0) this.pierShake?.fail(n === UV_EOF ? 'closed' : errorName(n), null);
}

function onHandshakeStart(this: HandshakeTls, now: number): void {
  // The edge's contexts refuse renegotiation (SSL_OP_NO_RENEGOTIATION, certificate-picker.ts), so
  // OpenSSL starts no second handshake. Were the flag missing from this Node, node:tls's limit
  // applies, as on the TLSSocket paths: at most CLIENT_RENEG_LIMIT handshakes after the first
  // within CLIENT_RENEG_WINDOW seconds of each other.
  const last = this.pierLastStart ?? 0;
  this.pierLastStart = now;
  if (last === 0) return;
  const count = now - last >= tls.CLIENT_RENEG_WINDOW * 1000 ? 1 : (this.pierRenegotiations ?? 0) + 1;
  this.pierRenegotiations = count;
  if (count <= tls.CLIENT_RENEG_LIMIT) return;
  const code = 'ERR_TLS_SESSION_ATTACK';
  if (this.pierShake !== undefined) this.pierShake.fail(code, null);
  else this.pierTls?.tlsError(code);
}

function onHandshakeDone(this: HandshakeTls): void {
  this.pierShake?.handshakeDone();
}

function onHandshakeError(this: HandshakeTls, err: NodeJS.ErrnoException): void {
  const code = err.code ?? 'EPROTO';
  if (this.pierShake !== undefined) this.pierShake.fail(code, err);
  else this.pierTls?.tlsError(code);
}

function loadBinding(): TlsWrapBinding | null {
  const legacy = (process as unknown as { binding?: unknown }).binding;
  if (typeof legacy !== 'function') return null;
  let b: Partial<TlsWrapBinding> & { TLSWrap?: { prototype?: Record<string, unknown> } };
  try {
    b = (process as unknown as { binding(name: string): Partial<TlsWrapBinding> & { TLSWrap?: { prototype?: Record<string, unknown> } } }).binding('tls_wrap');
  } catch {
    return null;
  }
  const proto = b.TLSWrap?.prototype ?? {};
  const missing = ['setALPNProtocols', 'destroySSL', 'getServername', 'getALPNNegotiatedProtocol', 'getProtocol', 'getCipher', 'isSessionReused', 'readStart', 'readStop', 'writeBuffer', 'writev', 'shutdown'].filter(
    (m) => typeof proto[m] !== 'function',
  );
  if (typeof b.wrap !== 'function' || missing.length > 0) return null;
  return b as TlsWrapBinding;
}

function errorName(code: number): string {
  try {
    return getSystemErrorName(code);
  } catch {
    return `E${-code}`;
  }
}
