// `node dist/bench/bare-proxy.js --io handle|socket LISTEN:BACKEND ...`: a feature-less TCP proxy
// on the edge's own TCP I/O (proxy/tcp-io/), the reference the edge is held to (within 10 %): it
// accepts, connects to one fixed backend, splices both ways with backpressure and half-close, and
// closes. No route table, admission, balancing, PROXY header, timeouts, metrics or logs: what is
// left is what Node and the I/O cost, so the gap to it is what the edge's features cost.

import net from 'node:net';
import { parseArgs } from 'node:util';
import { selectTcpIo, type TcpIoChoice } from '../proxy/tcp-io/select-tcp-io.js';
import type { HandleOwner, TcpHandle, TcpIo } from '../proxy/tcp-io/tcp-io.js';

class Pair implements HandleOwner {
  backend: TcpHandle | null = null;
  /** Client bytes read before the backend connected. */
  held: Buffer[] | null = [];
  clientEnded = false;
  backendEnded = false;
  closing = false;

  constructor(
    readonly client: TcpHandle,
    io: TcpIo,
    port: number,
  ) {
    client.owner = this;
    this.backend = io.connect(this, '127.0.0.1', port, onConnect);
    client.readStart();
  }

  get borrows(): boolean {
    return this.held === null;
  }

  connected(): void {
    const backend = this.backend!;
    const held = this.held!;
    this.held = null;
    backend.readStart();
    if (held.length > 0 && !backend.writev(held)) this.client.pause();
    if (this.clientEnded) backend.shutdown();
  }

  onData(handle: TcpHandle, buf: Buffer): void {
    if (handle === this.client) {
      if (this.held !== null) {
        this.held.push(buf);
        return;
      }
      if (!this.backend!.write(buf)) handle.pause();
    } else if (!this.client.write(buf)) {
      handle.pause();
    }
  }

  onEnd(handle: TcpHandle): void {
    if (handle === this.client) {
      this.clientEnded = true;
      if (this.held === null) this.backend!.shutdown();
    } else {
      this.backendEnded = true;
      this.client.shutdown();
    }
    if (this.clientEnded && this.backendEnded) this.closeWhenFlushed();
  }

  onError(): void {
    this.close();
  }

  onFlushed(handle: TcpHandle): void {
    if (this.closing) return this.closeWhenFlushed();
    const other = handle === this.client ? this.backend : this.client;
    if (other !== null && other.paused) other.readStart();
  }

  closeWhenFlushed(): void {
    this.closing = true;
    if (this.client.writeQueueSize === 0 && (this.backend === null || this.backend.writeQueueSize === 0)) this.close();
  }

  close(): void {
    this.client.close();
    this.backend?.close();
    this.backend = null;
  }
}

function onConnect(handle: TcpHandle, error: string | null): void {
  const pair = handle.owner as Pair | undefined;
  if (pair === undefined) return;
  if (error === null) pair.connected();
  else pair.close();
}

const { values, positionals } = parseArgs({ options: { io: { type: 'string', default: 'auto' } }, allowPositionals: true });
const { io } = await selectTcpIo(values.io as TcpIoChoice);
for (const pair of positionals) {
  const [listen, backend] = pair.split(':').map(Number) as [number, number];
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
  server.listen({ host: '127.0.0.1', port: listen }, () => {
    io.accept(
      server,
      (client) => new Pair(client, io, backend),
      () => undefined,
    );
  });
}
process.stdout.write(`bare proxy on ${io.mode} i/o: ${positionals.join(' ')}\n`);
process.on('SIGTERM', () => process.exit(0));
