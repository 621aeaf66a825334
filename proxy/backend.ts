// One backend of one endpoint as the data plane tracks it: its connections (the count the balancer
// reads), passive ejection after consecutive failures (a refused or timed-out connect, or a close
// or reset right after connecting: connection.ts), counters for metrics, and draining when a
// snapshot removes it. Lives across snapshots.

/** What a backend needs from a connection it carries: a way to cut it (drain timeout, edge close). */
export interface BackendConnection {
  destroy(reason?: string): void;
}

/** Passive ejection: after `failures` consecutive failures, skip for `baseMs`, doubling up to `maxMs`. */
export interface EjectionPolicy {
  failures: number;
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_EJECTION: EjectionPolicy = { failures: 3, baseMs: 1000, maxMs: 30_000 };

export class Backend {
  /** `endpointId` + NUL + backend id: unique within a snapshot. */
  readonly key: string;
  /** Failures since the start (a metric): connects refused or timed out, early closes and resets. */
  connectFailures = 0;
  /** Failures since the backend last proved itself (a byte, or a connection that outlived the early window). */
  consecutiveFailures = 0;
  /** The last failure's code (ECONNREFUSED, ETIMEDOUT, ECONNRESET, EARLYCLOSE), kept after recovery. */
  lastError: string | undefined = undefined;
  /** Skipped by the balancer until this time (ms since epoch); 0 when not ejected. */
  ejectedUntil = 0;
  /** Times the backend was ejected. */
  ejections = 0;
  draining = false;
  // Counters for metrics, plain integers; bytes seen from the client's point of view.
  connectionsTotal = 0;
  bytesIn = 0;
  bytesOut = 0;
  private backoffMs = 0;
  private readonly connections = new Set<BackendConnection>();
  private drainTimer: NodeJS.Timeout | undefined;
  private onDrained: ((backend: Backend) => void) | undefined;

  constructor(
    readonly endpointId: string,
    readonly id: string,
    readonly address: string,
    readonly port: number,
  ) {
    this.key = backendKey(endpointId, id);
  }

  /** Connections currently assigned, including ones still connecting. */
  get active(): number {
    return this.connections.size;
  }

  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  acquire(connection: BackendConnection): void {
    this.connections.add(connection);
  }

  release(connection: BackendConnection): void {
    if (!this.connections.delete(connection)) return;
    if (this.draining && this.connections.size === 0) this.drained();
  }

  /** A connect succeeded; the backend has yet to prove it serves (see proven). */
  connected(): void {
    this.connectionsTotal++;
  }

  /** The backend answered, or kept a connection past the early-failure window: failures reset. */
  proven(): void {
    if (this.consecutiveFailures === 0 && this.ejectedUntil === 0) return;
    this.consecutiveFailures = 0;
    this.backoffMs = 0;
    this.ejectedUntil = 0;
  }

  /**
   * Counts a failure; at the threshold (and at every failure after it, which is a retry after the
   * backoff ran out) ejects for a backoff that doubles each time. True when it ejected.
   */
  connectFailed(now: number, policy: EjectionPolicy, code: string): boolean {
    this.connectFailures++;
    this.lastError = code;
    this.consecutiveFailures++;
    if (this.consecutiveFailures < policy.failures || this.ejectedUntil > now) return false;
    this.backoffMs = this.backoffMs === 0 ? policy.baseMs : Math.min(this.backoffMs * 2, policy.maxMs);
    this.ejectedUntil = now + this.backoffMs;
    this.ejections++;
    return true;
  }

  /**
   * Takes no new connections from now on; established ones may finish until `timeoutMs`, then
   * they are destroyed. `onDrained` runs once, when the last connection is gone.
   */
  drain(timeoutMs: number, onDrained: (backend: Backend) => void): void {
    if (this.draining) return;
    this.draining = true;
    this.onDrained = onDrained;
    if (this.connections.size === 0) {
      this.drained();
      return;
    }
    this.drainTimer = setTimeout(() => this.destroyAll('drain'), timeoutMs);
    this.drainTimer.unref();
  }

  destroyAll(reason = 'drain'): void {
    for (const connection of this.connections) connection.destroy(reason);
  }

  /** Cancels a pending drain deadline (the edge is closing and destroys everything itself). */
  stopDrainTimer(): void {
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
  }

  private drained(): void {
    this.stopDrainTimer();
    const onDrained = this.onDrained;
    this.onDrained = undefined;
    onDrained?.(this);
  }
}

export function backendKey(endpointId: string, backendId: string): string {
  return `${endpointId}\u0000${backendId}`;
}
