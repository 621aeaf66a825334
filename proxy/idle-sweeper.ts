// One coarse timer for every connection's deadlines (idle, half-close, PROXY header, ClientHello)
// instead of a timer per socket: connections stamp `clock.now` on activity, and each tick asks
// every registered item whether its time is up. Also the coarse clock the hot path reads.

import type { EndReason } from './connection-log.js';

export interface Sweepable {
  /** Called once per tick with the tick's time; closes the item if one of its deadlines passed. */
  sweep(now: number): void;
  destroy(reason?: EndReason): void;
}

export class IdleSweeper {
  /** Milliseconds since the epoch as of the last tick: cheap to read, up to one tick stale. */
  now = Date.now();
  private readonly items = new Set<Sweepable>();
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly tickMs: number) {}

  add(item: Sweepable): void {
    this.items.add(item);
    if (this.timer === undefined) {
      // Refresh the clock when the timer starts, so a stamp taken now is not a whole idle period old.
      this.now = Date.now();
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
  }

  delete(item: Sweepable): void {
    this.items.delete(item);
  }

  get size(): number {
    return this.items.size;
  }

  /** Destroys every item (the edge is closing). */
  destroyAll(reason: EndReason): void {
    for (const item of [...this.items]) item.destroy(reason);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = (this.now = Date.now());
    if (this.items.size === 0) {
      this.stop();
      return;
    }
    // Items may delete themselves while swept; a Set's iterator tolerates that.
    for (const item of this.items) item.sweep(now);
  }
}
