// What a listener reads from a client before it can route: a PROXY header (ports that accept one
// from trusted proxies) and/or the TLS ClientHello (SNI passthrough ports). Bytes are gathered up
// to the readers' caps under a deadline kept by the sweeper; nothing is forwarded until both are
// whole, and everything after them is handed on untouched.

import { readClientHello } from './client-hello.js';
import type { ListenerStats, RefusalReason } from './edge-metrics.js';
import type { IdleSweeper, Sweepable } from './idle-sweeper.js';
import type { PeerAddress } from './peer-address.js';
import { readProxyHeader } from './proxy-header-reader.js';
import type { ListenerRoute } from './route-table.js';
import type { HandleOwner, TcpHandle } from './tcp-io/tcp-io.js';

export interface PreambleSink {
  /** Source and destination are the real ones (PROXY-in applied); `rest` is every byte read after the header. */
  preambleDone(p: Preamble, rest: Buffer | null, serverName: string | null): void;
  preambleRefused(p: Preamble, reason: RefusalReason, detail: string): void;
}

export interface PreambleOptions {
  sweeper: IdleSweeper;
  proxyHeaderTimeoutMs: number;
  helloTimeoutMs: number;
}

/** The listener the socket came in on. */
export interface PreambleListener {
  readonly key: string;
  readonly stats: ListenerStats;
}

export class Preamble implements Sweepable, HandleOwner {
  private buffered: Buffer | null = null;
  /** Bytes read are kept until the header / hello is whole. */
  readonly borrows = false;
  /** True while the handle's events are ours. */
  private active = true;
  private stage: 'proxy' | 'hello';
  private deadline: number;

  private constructor(
    readonly socket: TcpHandle,
    readonly route: ListenerRoute,
    /** The client as seen so far: the socket's peer, replaced by a PROXY header's source. */
    public source: PeerAddress,
    public destination: PeerAddress,
    readonly listener: PreambleListener,
    readonly startedAt: number,
    private readonly sink: PreambleSink,
    private readonly options: PreambleOptions,
  ) {
    this.stage = route.proxyIn !== null ? 'proxy' : 'hello';
    this.deadline = startedAt + (this.stage === 'proxy' ? options.proxyHeaderTimeoutMs : options.helloTimeoutMs);
  }

  /** Starts reading; the socket belongs to the preamble until it calls the sink. */
  static start(
    socket: TcpHandle,
    route: ListenerRoute,
    source: PeerAddress,
    destination: PeerAddress,
    listener: PreambleListener,
    startedAt: number,
    sink: PreambleSink,
    options: PreambleOptions,
  ): Preamble {
    const p = new Preamble(socket, route, source, destination, listener, startedAt, sink, options);
    socket.owner = p;
    options.sweeper.add(p);
    socket.readStart();
    return p;
  }

  sweep(now: number): void {
    if (now >= this.deadline) this.fail('timeout');
  }

  destroy(): void {
    this.release();
    this.socket.close();
  }

  onData(_handle: TcpHandle, chunk: Buffer): void {
    this.received(chunk);
  }

  onEnd(): void {
    this.fail('closed before complete');
  }

  onError(_handle: TcpHandle, code: string): void {
    this.fail(code);
  }

  onFlushed(): void {}

  received(chunk: Buffer): void {
    let buf = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    this.buffered = null;
    if (this.stage === 'proxy') {
      const result = readProxyHeader(buf);
      if (result.state === 'incomplete') {
        this.buffered = buf;
        return;
      }
      if (result.state === 'invalid') return this.refuse('proxy-header', result.reason);
      const { header } = result;
      // LOCAL (and PROXY with an unspec or unix family): the socket's own addresses stand.
      if (header.command === 'proxy' && header.source !== undefined && header.destination !== undefined && header.family !== 'unix') {
        this.source = header.source;
        this.destination = header.destination;
      }
      buf = buf.subarray(result.consumed);
      if (this.route.sni === null) return this.done(buf.length > 0 ? buf : null, null);
      this.stage = 'hello';
      this.deadline = this.options.sweeper.now + this.options.helloTimeoutMs + this.options.sweeper.tickMs;
      if (buf.length === 0) return;
    }
    const hello = readClientHello(buf);
    if (hello.state === 'incomplete') {
      this.buffered = buf;
      return;
    }
    if (hello.state === 'invalid') return this.refuse('tls-hello', hello.reason);
    this.done(buf, hello.serverName);
  }

  refuse(reason: RefusalReason, detail: string): void {
    if (!this.active) return;
    this.destroy();
    this.sink.preambleRefused(this, reason, detail);
  }

  private done(rest: Buffer | null, serverName: string | null): void {
    this.release();
    this.sink.preambleDone(this, rest, serverName);
  }

  /** Gives the handle back: its events stop reaching the preamble (the handle keeps reading). */
  release(): void {
    if (!this.active) return;
    this.active = false;
    if (this.socket.owner === this) this.socket.owner = undefined;
    this.options.sweeper.delete(this);
    this.buffered = null;
  }

  /** Refuses for what the current stage was waiting for. */
  fail(detail: string): void {
    this.refuse(this.stage === 'proxy' ? 'proxy-header' : 'tls-hello', detail);
  }
}
