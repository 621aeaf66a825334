// The TLS handshake of one accepted connection on a tls: terminate endpoint: node:tls over the
// TCP handle (handle-duplex.ts), the certificate picked by SNI (certificate-picker.ts), a client
// certificate required when the endpoint names a CA. An endpoint with one certificate and no client
// CA, on handle i/o, shakes hands on node's TLSWrap without a TLSSocket (raw.tlsServer()). On
// success the caller gets the cleartext side as a TcpHandle (tls-handle.ts), the server name and
// the facts for the PROXY v2 TLVs; a failed or timed-out handshake is refused (counted by the caller). The sweeper keeps the
// deadline and closes handshakes still running when the edge closes. While tls-alpn-01 challenges
// are pending (ACME), the ClientHello is read first so a validator asking for `acme-tls/1` gets
// the challenge certificate and nothing is forwarded.

import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { readClientHello } from '../client-hello.js';
import type { IdleSweeper, Sweepable } from '../idle-sweeper.js';
import type { HandleOwner, TcpHandle, TlsHandshakeEvents, TlsServerHandshake } from '../tcp-io/tcp-io.js';
import type { CertificatePicker } from './certificate-picker.js';
import { HandleDuplex } from './handle-duplex.js';
import { TlsHandle } from './tls-handle.js';
import type { TlsFacts } from './tls-tlvs.js';

export interface RouteTls {
  picker: CertificatePicker;
  alpn: string[] | undefined;
  /** Client certificates are required (mTLS). */
  requireClientCert: boolean;
  /** Pending tls-alpn-01 challenge certificates by name (RFC 8737); null: none. */
  challenges: ReadonlyMap<string, tls.SecureContext> | null;
}

/** The ALPN protocol of tls-alpn-01 validation (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';

export type HandshakeRefusal = 'tls-handshake' | 'client-cert';

export interface HandshakeSink {
  /** The facts for the PROXY v2 TLVs are gathered only when wanted (else secured() gets null). */
  readonly wantsFacts: boolean;
  secured(handle: TcpHandle, serverName: string | null, facts: TlsFacts | null): void;
  refused(reason: HandshakeRefusal, detail: string): void;
}

export class TlsTermination implements Sweepable, HandleOwner, TlsHandshakeEvents {
  private socket: tls.TLSSocket | null = null;
  /** The handshake on node's TLSWrap without a TLSSocket (raw.tlsServer()), in the plain case. */
  private shake: TlsServerHandshake | null = null;
  /** While reading the ClientHello ahead of node:tls (only when tls-alpn-01 challenges are pending). */
  private peeked: Buffer | null = null;
  private raw: TcpHandle | null;
  private done = false;
  /** node:tls runs on the TCP handle itself (raw.toSocket()). */
  private native = false;

  private constructor(
    raw: TcpHandle,
    private readonly config: RouteTls,
    private readonly deadline: number,
    private readonly sweeper: IdleSweeper,
    private readonly sink: HandshakeSink,
    initial: Buffer | null,
  ) {
    this.raw = raw;
    // Bytes read before the handshake starts (those that came with a PROXY header, or a hello
    // read for SNI routing) are the start of the hello: node:tls gets them first.
    const ahead = initial !== null && initial.length > 0 ? initial : null;
    if (config.challenges === null) {
      this.handshake(ahead, null);
      return;
    }
    // An ACME validator's hello asks for `acme-tls/1`: the certificate and ALPN list are chosen
    // before node:tls sees the hello (its SNI callback runs before ALPN is known).
    this.peeked = Buffer.alloc(0);
    raw.owner = this;
    if (ahead !== null) {
      this.onData(raw, ahead);
      if (this.peeked === null) return; // the whole hello was there: node:tls has it
    }
    raw.readStart();
  }

  /** Starts node:tls, with the challenge certificate when the hello is an ACME validation. */
  private handshake(initial: Buffer | null, challenge: tls.SecureContext | null): void {
    const raw = this.raw!;
    const config = this.config;
    const plain = challenge === null && initial === null ? plainContext(config) : null;
    if (plain !== null && raw.tlsServer !== undefined) {
      // The common case (one certificate, no client certificates) needs no TLSSocket at all: without
      // its construction, streams and teardown a full handshake takes about a fifth fewer
      // instructions (callgrind, docs/benchmarks.md).
      this.shake = raw.tlsServer(plain.context, plain.alpnWire, this);
      return;
    }
    // Natively when nothing was read ahead: node:tls then runs on the TCP handle in C++ (about half
    // the CPU of a handshake through a JS stream). Bytes read ahead go through HandleDuplex.
    let transport: Duplex;
    if (initial === null && raw.toSocket !== undefined) {
      transport = raw.toSocket();
      this.native = true;
    } else {
      const duplex = new HandleDuplex(raw);
      if (initial !== null && initial.length > 0) duplex.push(initial);
      transport = duplex;
    }
    this.socket = new tls.TLSSocket(
      transport,
      challenge !== null ? { isServer: true, secureContext: challenge, ALPNProtocols: [ACME_TLS_ALPN] } : serverOptions(config),
    );
    const socket = this.socket;
    socket.once('secure', () => (challenge !== null ? this.answered() : this.secureSocket(raw, config)));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(isCertError(err) ? 'client-cert' : 'tls-handshake', err.code ?? err.message));
    socket.once('close', () => this.fail('tls-handshake', 'closed before the handshake completed'));
  }

  // HandleOwner, while the hello is read ahead (then the HandleDuplex owns the handle).
  readonly borrows = false;

  onData(_handle: TcpHandle, buf: Buffer): void {
    if (this.peeked === null) return;
    const bytes = Buffer.concat([this.peeked, buf]);
    const hello = readClientHello(bytes);
    if (hello.state === 'incomplete') {
      this.peeked = bytes;
      return;
    }
    this.peeked = null;
    this.raw!.pause(); // the duplex resumes reading when node:tls asks
    const name = hello.state === 'done' ? hello.serverName : null;
    const wantsChallenge = hello.state === 'done' && hello.alpn.includes(ACME_TLS_ALPN) && name !== null;
    // A malformed hello goes to node:tls as well: it refuses it like any bad handshake.
    this.handshake(bytes, wantsChallenge ? (this.config.challenges?.get(name) ?? null) : null);
  }

  onEnd(): void {
    this.fail('tls-handshake', 'closed before the handshake completed');
  }

  onError(_handle: TcpHandle, code: string): void {
    this.fail('tls-handshake', code);
  }

  onFlushed(): void {}

  /** The validator has seen the challenge certificate: nothing is forwarded. */
  private answered(): void {
    if (this.done) return;
    this.done = true;
    this.sweeper.delete(this);
    this.socket!.removeAllListeners('error');
    this.socket!.on('error', () => undefined);
    this.socket!.destroySoon();
  }

  // TlsHandshakeEvents, for raw.tlsServer().
  secure(): void {
    if (this.done) return;
    const shake = this.shake!;
    this.done = true;
    this.sweeper.delete(this);
    const facts: TlsFacts | null = this.sink.wantsFacts
      ? { alpn: shake.alpnProtocol, version: shake.protocol, cipher: shake.cipher, certConnection: false, certSession: false, verify: 0, commonName: null }
      : null;
    this.sink.secured(shake.secured(), shake.serverName, facts);
  }

  failed(code: string, err: Error | null): void {
    const reason = err !== null && isCertError(err as NodeJS.ErrnoException) ? 'client-cert' : 'tls-handshake';
    this.fail(reason, code === 'closed' ? 'closed before the handshake completed' : code);
  }

  static start(raw: TcpHandle, config: RouteTls, timeoutMs: number, sweeper: IdleSweeper, sink: HandshakeSink, initial: Buffer | null = null): TlsTermination {
    const t = new TlsTermination(raw, config, sweeper.now + timeoutMs + sweeper.tickMs, sweeper, sink, initial);
    sweeper.add(t);
    return t;
  }

  sweep(now: number): void {
    if (now >= this.deadline) this.fail('tls-handshake', 'timeout');
  }

  destroy(): void {
    if (this.done) return;
    this.done = true;
    this.sweeper.delete(this);
    if (this.shake !== null) this.shake.destroy();
    else if (this.socket !== null) this.socket.destroy();
    else this.raw?.close();
    this.raw = null;
  }

  private secureSocket(raw: TcpHandle, config: RouteTls): void {
    if (this.done) return;
    const socket = this.socket!;
    // Asked only of a client we asked for a certificate (without one, OpenSSL reports "no certificate").
    const verifyError = config.requireClientCert
      ? ((socket as unknown as { _handle: { verifyError(): Error | null } | null })._handle?.verifyError() ?? null)
      : null;
    if (config.requireClientCert && verifyError !== null) {
      // OpenSSL lets node:tls decide: a certificate was sent but not by the CA (or expired).
      return this.fail('client-cert', (verifyError as NodeJS.ErrnoException).code ?? verifyError.message);
    }
    this.done = true;
    this.sweeper.delete(this);
    socket.removeAllListeners('error');
    socket.removeAllListeners('close');
    const facts = this.sink.wantsFacts ? this.facts(socket, config, verifyError) : null;
    const serverName = (socket as unknown as { servername?: string | false }).servername;
    // On the native path the cleartext is read and written on TLSWrap directly where the I/O allows.
    const handle = this.native && raw.cleartext !== undefined ? raw.cleartext(socket) : new TlsHandle(socket, raw);
    this.sink.secured(handle, typeof serverName === 'string' && serverName !== '' ? serverName : null, facts);
  }

  /** What the PROXY v2 TLVs say about this handshake (tls-tlvs.ts). */
  private facts(socket: tls.TLSSocket, config: RouteTls, verifyError: Error | null): TlsFacts {
    const peer = config.requireClientCert ? socket.getPeerCertificate() : null;
    const hasPeer = peer !== null && Object.keys(peer).length > 0;
    const reused = socket.isSessionReused();
    const cipher = socket.getCipher();
    const cn = hasPeer ? peer.subject?.CN : undefined;
    const facts: TlsFacts = {
      alpn: typeof socket.alpnProtocol === 'string' ? socket.alpnProtocol : null,
      version: socket.getProtocol() ?? 'unknown',
      cipher: cipher?.name ?? 'unknown',
      certConnection: hasPeer && !reused,
      certSession: hasPeer || (config.requireClientCert && reused),
      verify: verifyError === null ? 0 : 1,
      commonName: typeof cn === 'string' ? cn : Array.isArray(cn) ? String(cn[0]) : null,
    };
    return facts;
  }

  private fail(reason: HandshakeRefusal, detail: string): void {
    if (this.done) return;
    this.destroy();
    this.sink.refused(reason, detail);
  }
}

/** What raw.tlsServer() needs for an endpoint that fits it, made once per route; null when it does not. */
const plainOf = new WeakMap<RouteTls, { context: tls.SecureContext; alpnWire: Buffer | undefined } | null>();

function plainContext(config: RouteTls): { context: tls.SecureContext; alpnWire: Buffer | undefined } | null {
  let plain = plainOf.get(config);
  if (plain !== undefined) return plain;
  const picker = config.picker;
  plain = null;
  // One certificate answers every name; client certificates take the TLSSocket path (its checks).
  if (picker.contexts.length === 1 && picker.defaultContext !== undefined && !config.requireClientCert) {
    let alpnWire: Buffer | undefined;
    if (config.alpn !== undefined) {
      const out: { ALPNProtocols?: Buffer } = {};
      // Public in node:tls (the wire format TLSWrap takes), missing from its type declarations.
      (tls as unknown as { convertALPNProtocols(list: string[], out: { ALPNProtocols?: Buffer }): void }).convertALPNProtocols(config.alpn, out);
      alpnWire = out.ALPNProtocols;
    }
    plain = { context: picker.defaultContext, alpnWire };
  }
  plainOf.set(config, plain);
  return plain;
}

/** The TLSSocket options of an endpoint, made once per route (node:tls copies them per socket). */
const optionsOf = new WeakMap<RouteTls, tls.TLSSocketOptions>();

function serverOptions(config: RouteTls): tls.TLSSocketOptions {
  let options = optionsOf.get(config);
  if (options !== undefined) return options;
  const picker = config.picker;
  options = {
    isServer: true,
    ...(picker.defaultContext === undefined ? {} : { secureContext: picker.defaultContext }),
    // One certificate answers every name: no SNI callback (a call into JS per handshake).
    ...(picker.contexts.length === 1 && picker.defaultContext !== undefined ? {} : { SNICallback: pickerCallback(picker) }),
    ...(config.alpn === undefined ? {} : { ALPNProtocols: config.alpn }),
    requestCert: config.requireClientCert,
    rejectUnauthorized: config.requireClientCert,
  };
  optionsOf.set(config, options);
  return options;
}

/** The SNI callback of an endpoint with several certificates (or none yet). */
function pickerCallback(picker: CertificatePicker): (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void {
  return (name, cb) => {
    const context = picker.pick(name);
    if (context === undefined) cb(new Error('no certificate yet'));
    else cb(null, context);
  };
}

function isCertError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return code.includes('CERTIFICATE') || code.includes('CERT_');
}
