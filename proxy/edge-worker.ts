// Entry point of one edge cluster worker: runs a data plane, applies the snapshots the primary
// sends over IPC, answers its status questions, and drains then exits when told to stop.

import process from 'node:process';
import { pino } from 'pino';
import { WORKER_OPTIONS_ENV, type FromWorker, type ToWorker } from './edge-cluster.js';
import { drainEdge } from './edge-drain.js';
import { createEdge } from './edge.js';
import { selectTcpIo } from './tcp-io/select-tcp-io.js';
import type { TcpIoMode } from './tcp-io/tcp-io.js';

interface WorkerOptions {
  drainTimeoutMs: number;
  connectTimeoutMs?: number;
  logLevel: string;
  /** Chosen (and logged) by the primary. */
  io: TcpIoMode;
  /** Hex secret for the TLS ticket keys, the same in every worker. */
  ticketSeed?: string;
}

const options = JSON.parse(process.env[WORKER_OPTIONS_ENV] ?? '{}') as WorkerOptions;
// It holds the ticket secret: not left for child processes to inherit.
delete process.env[WORKER_OPTIONS_ENV];
const log = pino({ level: options.logLevel ?? 'info' }, pino.destination(2)).child({ worker: process.pid });
const { io } = await selectTcpIo(options.io ?? 'auto');
const send = (message: FromWorker): void => {
  if (process.connected) process.send?.(message);
};

const edge = createEdge({
  log,
  io,
  drainTimeoutMs: options.drainTimeoutMs ?? 30_000,
  ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
  onStateChange: () => send({ type: 'changed' }),
  ...(options.ticketSeed === undefined ? {} : { ticketSeed: Buffer.from(options.ticketSeed, 'hex') }),
});

let stopping: Promise<void> | undefined;
const stop = (): void => {
  stopping ??= drainEdge(edge, options.drainTimeoutMs ?? 30_000).then(
    () => process.exit(0),
    (err: unknown) => {
      log.error({ err }, 'edge worker stop failed');
      process.exit(1);
    },
  );
};

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'apply':
      void edge.apply(message.config).then((result) => send({ type: 'applied', id: message.id, result }));
      break;
    case 'report':
      send({ type: 'report', id: message.id, report: { pid: process.pid, status: edge.status(), metrics: edge.metrics() } });
      break;
    case 'stop':
      stop();
      break;
  }
});
// The primary coordinates stops; a terminal's Ctrl-C reaches the whole group, so do the same here.
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
// Reloads and rolls are the primary's business (it re-reads the file, it replaces us); a
// group-wide SIGHUP or SIGUSR2 must not kill us.
process.on('SIGHUP', () => undefined);
process.on('SIGUSR2', () => undefined);
// A primary that died without telling us: nothing will send snapshots any more.
process.on('disconnect', stop);
send({ type: 'ready' });
