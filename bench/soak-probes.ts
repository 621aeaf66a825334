// Edge traffic at a steady, bounded rate: a new connection every `intervalMs` through an app's
// endpoint, alternating 127.0.0.1 and ::1 (the soak's own namespace), sending one line and
// waiting for its echo. Each probe ends ok, refused, reset, closed (ended before the echo), timed
// out, or with a wrong reply; the tally attributes them to fault windows afterwards.
import net from 'node:net';
import type { ProbeOutcome, Tally } from './soak-tally.js';

export interface ProbeLoop {
  /** Stops starting probes and waits for those in flight. */
  stop(): Promise<void>;
}

export interface ProbeOptions {
  port: number;
  intervalMs: number;
  timeoutMs: number;
  /** Probes in flight at most; a tick with more is skipped (and counted as a timeout). */
  maxInFlight: number;
}

export function startProbes(tally: Tally, options: ProbeOptions): ProbeLoop {
  let n = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const family: 4 | 6 = n % 2 === 0 ? 4 : 6;
    const at = tally.now();
    n++;
    if (inFlight >= options.maxInFlight) {
      tally.probe(family, 'timeout', at);
      return;
    }
    inFlight++;
    const p = probeOnce(family === 4 ? '127.0.0.1' : '::1', options.port, `soak probe ${n}\n`, options.timeoutMs).then((outcome) => {
      inFlight--;
      tally.probe(family, outcome, at);
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, options.intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...pending]);
    },
  };
}

/** One connection: send `payload`, expect it back. Never rejects. */
export function probeOnce(host: string, port: number, payload: string, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let received = '';
    let settled = false;
    const socket = net.connect({ host, port });
    const done = (outcome: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done('timeout'), timeoutMs);
    socket.setNoDelay(true);
    socket.once('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.length >= payload.length) done(received === payload ? 'ok' : 'wrong-reply');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') done('refused');
      else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') done('reset');
      else done('closed');
    });
    socket.on('close', () => done(received.length > 0 && !payload.startsWith(received) ? 'wrong-reply' : 'closed'));
  });
}
