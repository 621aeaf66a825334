// The file descriptors of one edge process. Every client socket and every backend connect takes
// one; when they run out, accepts and connects fail (EMFILE) and a storm of clients on one port
// would leave no descriptor for the backend connects of the clients already admitted. So the edge
// keeps a reserve: near `limit - reserve` new clients are closed at once and counted, and in the
// band below it (`limit - 2 × reserve`) an endpoint already holding half the capacity is refused
// first, so other endpoints still get in. Descriptor errors and refusals are counted and logged at
// most once per second (docs/operations.md, "File descriptors").

import { readdirSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';

export type FdPressure = 'ok' | 'tight' | 'full';

/** Where a descriptor error happened. */
export type FdOperation = 'accept' | 'connect';

export interface FdMetrics {
  /** The soft `nofile` limit of this process, null when unknown (no /proc). */
  limit: number | null;
  /** Descriptors open as last counted (sockets of the data plane counted live). */
  open: number;
  reserve: number;
  /** Clients closed at once because descriptors ran low. */
  refused: number;
  errors: { code: string; op: FdOperation; count: number }[];
}

export interface FdBudgetOptions {
  log: Logger;
  /** The soft limit; default: read from /proc/self/limits (null: unknown, nothing is refused). */
  limit?: number | null;
  /** Descriptors kept back; default max(32, 5 % of the limit). */
  reserve?: number;
  /** Counts the descriptors open now; default: entries of /proc/self/fd (null: cannot tell). */
  countOpen?: () => number | null;
}

const LOG_EVERY_MS = 1000;
/** Below the tight mark the count is trusted as kept; near it, recount at most this often. */
const RECOUNT_MS = 1000;

export class FdBudget {
  readonly limit: number | null;
  readonly reserve: number;
  /** Sockets of the data plane open now (accepted clients and backend connects). */
  sockets = 0;
  refused = 0;
  /** Descriptors open that are not data-plane sockets (stdio, logs, IPC, listeners...), as last counted. */
  private others = 0;
  private countedAt = 0;
  private readonly errors = new Map<string, { code: string; op: FdOperation; count: number }>();
  /** Since the last log line. */
  private unlogged = { refused: 0, errors: 0 };
  private lastLogAt = 0;
  private logTimer: NodeJS.Timeout | undefined;
  private readonly countOpen: () => number | null;

  constructor(private readonly options: FdBudgetOptions) {
    this.limit = options.limit === undefined ? readSoftLimit() : options.limit;
    this.reserve = options.reserve ?? Math.max(32, Math.ceil((this.limit ?? 0) * 0.05));
    this.countOpen = options.countOpen ?? countProcFds;
    this.recount(Date.now());
  }

  get open(): number {
    return this.others + this.sockets;
  }

  /** Counts the process's descriptors again (after an apply; near the limit at most once a second). */
  recount(now: number): void {
    this.countedAt = now;
    const open = this.countOpen();
    if (open !== null) this.others = Math.max(0, open - this.sockets);
  }

  /** How close a new connection, which needs one more descriptor for its backend, is to the limit. */
  pressure(): FdPressure {
    const limit = this.limit;
    if (limit === null) return 'ok';
    const tight = limit - 2 * this.reserve;
    if (this.open + 1 <= tight) return 'ok';
    // Only near the mark is the clock read and the count refreshed (at most once a second).
    const now = Date.now();
    if (now - this.countedAt >= RECOUNT_MS) {
      this.recount(now);
      if (this.open + 1 <= tight) return 'ok';
    }
    return this.open + 1 > limit - this.reserve ? 'full' : 'tight';
  }

  /** Connections one endpoint may hold while descriptors are tight: half of what fits. */
  get fairShare(): number {
    if (this.limit === null) return Number.MAX_SAFE_INTEGER;
    return Math.max(1, Math.floor((this.limit - this.reserve - this.others) / 4));
  }

  /** A client closed at once for lack of descriptors. */
  noteRefused(): void {
    this.refused++;
    this.unlogged.refused++;
    this.maybeLog();
  }

  /** An accept or a backend connect failed with `code` (EMFILE, ENFILE ...). */
  noteError(code: string, op: FdOperation): void {
    const key = `${op}:${code}`;
    const entry = this.errors.get(key);
    if (entry === undefined) this.errors.set(key, { code, op, count: 1 });
    else entry.count++;
    this.unlogged.errors++;
    this.maybeLog();
  }

  metrics(): FdMetrics {
    return { limit: this.limit, open: this.open, reserve: this.reserve, refused: this.refused, errors: [...this.errors.values()].map((e) => ({ ...e })) };
  }

  close(): void {
    clearTimeout(this.logTimer);
    this.logTimer = undefined;
  }

  private maybeLog(): void {
    if (this.logTimer !== undefined) return;
    const wait = this.lastLogAt + LOG_EVERY_MS - Date.now();
    if (wait <= 0) return this.logNow();
    // Within a second of the last line: one more line when the second is over, with the counts.
    this.logTimer = setTimeout(() => {
      this.logTimer = undefined;
      this.logNow();
    }, wait);
    this.logTimer.unref();
  }

  private logNow(): void {
    const { refused, errors } = this.unlogged;
    if (refused === 0 && errors === 0) return;
    this.lastLogAt = Date.now();
    this.unlogged = { refused: 0, errors: 0 };
    this.options.log.error(
      {
        limit: this.limit,
        open: this.open,
        reserve: this.reserve,
        refusedSinceLastLog: refused,
        errorsSinceLastLog: errors,
        refusedTotal: this.refused,
        errors: Object.fromEntries([...this.errors.values()].map((e) => [`${e.op} ${e.code}`, e.count])),
      },
      'file descriptors running out: new clients closed at once (see docs/operations.md, "File descriptors")',
    );
  }
}

/** The soft `Max open files` of this process, or null where /proc is not there. */
export function readSoftLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    return soft === undefined || soft === 'unlimited' ? null : Number(soft);
  } catch {
    return null;
  }
}

/** Descriptors this process has open, or null where /proc is not there. */
export function countProcFds(): number | null {
  try {
    // The directory's own descriptor is one of the entries.
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return null;
  }
}
