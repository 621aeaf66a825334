// The TLS handshake of one accepted connection on a tls: terminate endpoint: node:tls over the
// TCP handle (handle-duplex.ts), the certificate picked by SNI (certificate-picker.ts), a client
// certificate required when the endpoint names a CA. On success the caller gets the cleartext
// side as a TcpHandle (tls-handle.ts), the server name and the facts for the PROXY v2 TLVs; a
// failed or timed-out handshake is refused (counted by the caller). The sweeper keeps the
// deadline and closes handshakes still running when the edge closes.

import tls from 'node:tls';
import type { IdleSweeper, Sweepable } from '../idle-sweeper.js';
import type { TcpHandle } from '../tcp-io/tcp-io.js';
import type { CertificatePicker } from './certificate-picker.js';
import { HandleDuplex } from './handle-duplex.js';
import { TlsHandle } from './tls-handle.js';
import type { TlsFacts } from './tls-tlvs.js';

export interface RouteTls {
  picker: CertificatePicker;
  alpn: string[] | undefined;
  /** Client certificates are required (mTLS). */
  requireClientCert: boolean;
}

export type HandshakeRefusal = 'tls-handshake' | 'client-cert';

export interface HandshakeSink {
  secured(handle: TlsHandle, serverName: string | null, facts: TlsFacts): void;
  refused(reason: HandshakeRefusal, detail: string): void;
}

export class TlsTermination implements Sweepable {
  private readonly socket: tls.TLSSocket;
  private done = false;

  private constructor(
    raw: TcpHandle,
    config: RouteTls,
    private readonly deadline: number,
    private readonly sweeper: IdleSweeper,
    private readonly sink: HandshakeSink,
  ) {
    const duplex = new HandleDuplex(raw);
    this.socket = new tls.TLSSocket(duplex, {
      isServer: true,
      secureContext: config.picker.defaultContext,
      SNICallback: (name, cb) => cb(null, config.picker.pick(name)),
      ...(config.alpn === undefined ? {} : { ALPNProtocols: config.alpn }),
      requestCert: config.requireClientCert,
      rejectUnauthorized: config.requireClientCert,
    });
    const socket = this.socket;
    socket.once('secure', () => this.secure(raw, config));
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(isCertError(err) ? 'client-cert' : 'tls-handshake', err.code ?? err.message));
    socket.once('close', () => this.fail('tls-handshake', 'closed before the handshake completed'));
  }

  static start(raw: TcpHandle, config: RouteTls, timeoutMs: number, sweeper: IdleSweeper, sink: HandshakeSink): TlsTermination {
    const t = new TlsTermination(raw, config, sweeper.now + timeoutMs + sweeper.tickMs, sweeper, sink);
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
    this.socket.destroy();
  }

  private secure(raw: TcpHandle, config: RouteTls): void {
    if (this.done) return;
    const socket = this.socket;
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
    const serverName = (socket as unknown as { servername?: string | false }).servername;
    this.sink.secured(new TlsHandle(socket, raw), typeof serverName === 'string' && serverName !== '' ? serverName : null, facts);
  }

  private fail(reason: HandshakeRefusal, detail: string): void {
    if (this.done) return;
    this.destroy();
    this.sink.refused(reason, detail);
  }
}

function isCertError(err: NodeJS.ErrnoException): boolean {
  const code = err.code ?? '';
  return code.includes('CERTIFICATE') || code.includes('CERT_');
}
