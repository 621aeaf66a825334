// One backend of one endpoint as the data plane tracks it: its connections (the count the balancer
// reads), connect failures, and draining when a snapshot removes it. Lives across snapshots.

/** What a backend needs from a connection it carries: a way to cut it when draining times out. */
export interface BackendConnection {
  destroy(): void;
}

export class Backend {
  /** `endpointId` + NUL + backend id: unique within a snapshot. */
  readonly key: string;
  connectFailures = 0;
  draining = false;
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

  acquire(connection: BackendConnection): void {
    this.connections.add(connection);
  }

  release(connection: BackendConnection): void {
    if (!this.connections.delete(connection)) return;
    if (this.draining && this.connections.size === 0) this.drained();
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
    this.drainTimer = setTimeout(() => this.destroyAll(), timeoutMs);
    this.drainTimer.unref();
  }

  destroyAll(): void {
    for (const connection of this.connections) connection.destroy();
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
