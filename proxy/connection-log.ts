// The one structured line per client connection, written when it ends: who, where to, bytes each
// way, how long, and why it ended. Clean closes are sampled; errors, timeouts and refusals never are.

import type { Logger } from 'pino';
import type { PeerAddress } from './peer-address.js';
import { formatAddress } from './peer-address.js';

/** Why a connection ended; `refused-*` ones never reached a backend. */
export type EndReason =
  | 'client-fin'
  | 'backend-fin'
  | 'error'
  | 'connect-failed'
  | 'idle-timeout'
  | 'fin-timeout'
  | 'drain'
  | 'edge-close'
  | `refused-${string}`;

export interface ConnectionLogEntry {
  client: PeerAddress;
  listener: string;
  endpoint: string | null;
  backend: string | null;
  bytesIn: number;
  bytesOut: number;
  startedAt: number;
  reason: EndReason;
  /** An error code, or what exactly was wrong with a refused connection. */
  detail?: string | undefined;
  serverName?: string | null | undefined;
  /** The UNIQUE_ID TLV sent to the backend, in hex, when the endpoint asks for one. */
  id?: string | undefined;
}

/** Reasons logged for every connection whatever the sample rate. */
const ALWAYS = new Set<string>(['error', 'connect-failed', 'idle-timeout', 'fin-timeout', 'drain']);

export class ConnectionLog {
  /**
   * @param sampleRate share of clean closes (client-fin, backend-fin, edge-close) logged, 0..1.
   */
  constructor(
    private readonly log: Logger,
    private readonly sampleRate: number,
  ) {}

  /** Whether a close for `reason` is logged this time (so callers can skip building the entry). */
  wants(reason: string): boolean {
    if (ALWAYS.has(reason) || reason.startsWith('refused-')) return this.log.isLevelEnabled('info');
    if (this.sampleRate <= 0 || (this.sampleRate < 1 && Math.random() >= this.sampleRate)) return false;
    return this.log.isLevelEnabled('info');
  }

  /** Logs `entry`; call only after `wants(entry.reason)` said yes. */
  closed(entry: ConnectionLogEntry): void {
    const always = ALWAYS.has(entry.reason) || entry.reason.startsWith('refused-');
    this.log.info(
      {
        client: formatAddress(entry.client.address, entry.client.port),
        listener: entry.listener,
        endpoint: entry.endpoint,
        backend: entry.backend,
        bytesIn: entry.bytesIn,
        bytesOut: entry.bytesOut,
        durationMs: Date.now() - entry.startedAt,
        reason: entry.reason,
        ...(entry.detail === undefined ? {} : { detail: entry.detail }),
        ...(entry.serverName == null ? {} : { serverName: entry.serverName }),
        ...(entry.id === undefined ? {} : { id: entry.id }),
        ...(always ? {} : { sampleRate: this.sampleRate }),
      },
      'connection closed',
    );
  }
}
