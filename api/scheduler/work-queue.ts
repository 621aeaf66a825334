// A keyed work queue: triggers only enqueue a key; each key runs at most once at a time, and a
// key enqueued while it runs runs again afterwards. At most `concurrency` keys run at once; the
// rest wait their turn in order. Delayed enqueues coalesce to the earliest.
import type { Logger } from 'pino';

export interface WorkQueueOptions {
  /** Keys that may run at once (default: no limit). */
  concurrency?: number;
}

export interface WorkQueueStats {
  running: number;
  waiting: number;
  delayed: number;
}

export interface WorkQueue {
  enqueue(key: string, delayMs?: number): void;
  /** True when the key runs, waits for a slot, or has a delayed run pending. */
  has(key: string): boolean;
  stats(): WorkQueueStats;
  /** Resolves when nothing is running or waiting (delayed runs aside): for tests and graceful stop. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export function createWorkQueue(handler: (key: string) => Promise<void>, log: Logger, options: WorkQueueOptions = {}): WorkQueue {
  const concurrency = Math.max(1, options.concurrency ?? Infinity);
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  /** Keys ready to run, in arrival order (a Set keeps insertion order and drops repeats). */
  const waiting = new Set<string>();
  const timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  let closed = false;

  function run(key: string): void {
    if (closed) return;
    if (running.has(key)) {
      again.add(key);
      return;
    }
    waiting.add(key);
    pump();
  }

  function pump(): void {
    for (const key of waiting) {
      if (running.size >= concurrency || closed) return;
      waiting.delete(key);
      if (running.has(key)) {
        again.add(key);
        continue;
      }
      const p = handler(key)
        .catch((err) => log.error({ err, key }, 'work item failed'))
        .finally(() => {
          running.delete(key);
          // A rerun queues behind keys that waited meanwhile, so one busy key cannot starve them.
          if (again.delete(key) && !closed) waiting.add(key);
          pump();
        });
      running.set(key, p);
    }
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
    has: (key) => running.has(key) || waiting.has(key) || timers.has(key),
    stats: () => ({ running: running.size, waiting: waiting.size, delayed: timers.size }),
    async idle() {
      while (running.size > 0 || waiting.size > 0) await Promise.all(running.values());
    },
    async close() {
      closed = true;
      for (const { timer } of timers.values()) clearTimeout(timer);
      timers.clear();
      again.clear();
      waiting.clear();
      await Promise.all(running.values());
    },
  };
}
