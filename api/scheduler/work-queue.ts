// A keyed work queue: triggers only enqueue a key; each key runs at most once at a time, and a
// key enqueued while it runs runs again afterwards. Delayed enqueues coalesce to the earliest.
import type { Logger } from 'pino';

export interface WorkQueue {
  enqueue(key: string, delayMs?: number): void;
  /** Resolves when nothing is queued or running (for tests and graceful stop). */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export function createWorkQueue(handler: (key: string) => Promise<void>, log: Logger): WorkQueue {
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  const timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  let closed = false;

  function run(key: string): void {
    if (closed) return;
    if (running.has(key)) {
      again.add(key);
      return;
    }
    const p = handler(key)
      .catch((err) => log.error({ err, key }, 'work item failed'))
      .finally(() => {
        running.delete(key);
        if (again.delete(key)) run(key);
      });
    running.set(key, p);
  }

  return {
    enqueue(key, delayMs = 0) {
      if (closed) return;
      if (delayMs <= 0) return run(key);
      const at = Date.now() + delayMs;
      const pending = timers.get(key);
      if (pending && pending.at <= at) return;
      if (pending) clearTimeout(pending.timer);
      const timer = setTimeout(() => {
        timers.delete(key);
        run(key);
      }, delayMs);
      timer.unref();
      timers.set(key, { at, timer });
    },
    async idle() {
      while (running.size > 0) await Promise.all(running.values());
    },
    async close() {
      closed = true;
      for (const { timer } of timers.values()) clearTimeout(timer);
      timers.clear();
      again.clear();
      await Promise.all(running.values());
    },
  };
}
