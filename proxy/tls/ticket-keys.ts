// Session ticket keys shared by every worker of an edge without talking to each other: each key is
// derived from one secret seed (made by the cluster primary, handed to each worker it forks) and
// the current time window, so every worker encrypts and decrypts tickets with the same key, and
// the key changes every `rotationMs`. OpenSSL holds one ticket key per context, so a ticket from
// an earlier window no longer decrypts: that client does a full handshake and gets a new ticket.

import { createHmac, randomBytes } from 'node:crypto';

export const DEFAULT_TICKET_ROTATION_MS = 60 * 60 * 1000;

export interface TicketKeys {
  /** The 48 bytes (name, HMAC secret, AES key) for the window `now` falls in. */
  current(now?: number): Buffer;
  /** The time the current window ends. */
  nextRotation(now?: number): number;
  readonly rotationMs: number;
}

export function createTicketKeys(seed: Buffer = randomBytes(32), rotationMs = DEFAULT_TICKET_ROTATION_MS): TicketKeys {
  const window = (now: number): number => Math.floor(now / rotationMs);
  return {
    rotationMs,
    current(now = Date.now()): Buffer {
      const w = String(window(now));
      // 48 bytes from two HMAC blocks: a name unique per window, then the secrets.
      const a = createHmac('sha256', seed).update(`pier ticket key 1 ${w}`).digest();
      const b = createHmac('sha256', seed).update(`pier ticket key 2 ${w}`).digest();
      return Buffer.concat([a, b]).subarray(0, 48);
    },
    nextRotation(now = Date.now()): number {
      return (window(now) + 1) * rotationMs;
    },
  };
}
