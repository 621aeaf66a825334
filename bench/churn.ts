// A bounded load generator for the reconfiguration test: short connections (open, send 64
// bytes, read the echo, close) at a fixed concurrency, plus long-lived connections doing round
// trips, counting every failure (error, reset, short or wrong reply). Loopback only.

import net from 'node:net';

export interface ChurnOptions {
  port: number;
  concurrency: number;
  longLived: number;
  /** Hard limits: whichever comes first stops the load. */
  maxConnections: number;
  maxMs: number;
}

export interface ChurnResult {
  connections: number;
  failures: number;
  longLivedRoundTrips: number;
  longLivedFailures: number;
  errors: string[];
}

export interface Churn {
  stop(): Promise<ChurnResult>;
}

const PAYLOAD = Buffer.alloc(64, 0x61);

export function startChurn(options: ChurnOptions): Churn {
  const result: ChurnResult = { connections: 0, failures: 0, longLivedRoundTrips: 0, longLivedFailures: 0, errors: [] };
  const deadline = Date.now() + options.maxMs;
  let stopped = false;
  const note = (err: string): void => {
    if (result.errors.length < 20) result.errors.push(err);
  };
  const more = (): boolean => !stopped && Date.now() < deadline && result.connections < options.maxConnections;

  const shortLoop = async (): Promise<void> => {
    while (more()) {
      result.connections++;
      const error = await oneShot(options.port);
      if (error !== undefined) {
        result.failures++;
        note(error);
      }
    }
  };
  const longLoop = async (): Promise<void> => {
    const socket = net.connect({ host: '127.0.0.1', port: options.port, noDelay: true });
    const block = Buffer.alloc(1024, 0x62);
    let pending = 0;
    let resolveTrip: (() => void) | undefined;
    let failed: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      pending -= chunk.length;
      if (pending <= 0) resolveTrip?.();
    });
    const fail = (why: string): void => {
      failed ??= why;
      resolveTrip?.();
    };
    socket.on('error', (err) => fail(`long-lived: ${err.message}`));
    socket.on('close', () => fail('long-lived: closed by the proxy'));
    await new Promise<void>((resolve) => socket.once('connect', resolve).once('error', () => resolve()));
    while (!stopped && Date.now() < deadline && failed === undefined) {
      pending = block.length;
      await new Promise<void>((resolve) => {
        resolveTrip = resolve;
        socket.write(block);
      });
      if (failed === undefined) result.longLivedRoundTrips++;
    }
    if (failed !== undefined && !stopped) {
      result.longLivedFailures++;
      note(failed);
    }
    socket.removeAllListeners('close');
    socket.destroy();
  };

  const loops = [...Array.from({ length: options.concurrency }, shortLoop), ...Array.from({ length: options.longLived }, longLoop)];
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return result;
    },
  };
}

/** One short connection; resolves with an error description or undefined. */
function oneShot(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let received = 0;
    let done = false;
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(error);
    };
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true }, () => socket.end(PAYLOAD));
    const timer = setTimeout(() => finish('short: no reply within 10 s'), 10_000);
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('end', () => finish(received === PAYLOAD.length ? undefined : `short: got ${received} of ${PAYLOAD.length} bytes`));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(`short: ${err.code ?? err.message}`));
  });
}
