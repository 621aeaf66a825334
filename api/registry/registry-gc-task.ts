// The server's periodic registry garbage collection: a first run 10 min after the start (or
// sooner, with a shorter interval), then one every interval; a run that fails is
// logged, recorded as an event and retried sooner (1 min doubling up to the interval). Nothing
// it meets ends the server.
import type { Logger } from 'pino';
import type { GcResult } from './registry-gc.js';

export interface RegistryGcTaskOptions {
  run: () => Promise<GcResult>;
  intervalMs: number;
  log: Logger;
  onEvent: (event: { type: 'registry.gc' | 'registry.gc_failed'; message: string; data: Record<string, unknown> }) => void;
  /** First retry after a failure (default 60 s). */
  retryMs?: number;
  /** The first run after the start (default: the interval, at most 10 min), so a server restarted more often than the interval still collects. */
  firstRunMs?: number;
}

export function startRegistryGcTask(options: RegistryGcTaskOptions): { close(): void } {
  const { log } = options;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let retry = options.retryMs ?? 60_000;

  function schedule(ms: number): void {
    if (closed) return;
    timer = setTimeout(() => void once(), ms);
    timer.unref();
  }

  async function once(): Promise<void> {
    try {
      const result = await options.run();
      retry = options.retryMs ?? 60_000;
      log.info({ removed: result.removed.length, kept: result.kept, bytesFreed: result.bytesFreed }, 'registry garbage collection done');
      if (result.removed.length > 0) {
        options.onEvent({
          type: 'registry.gc',
          message: `registry garbage collection removed ${result.removed.length} image${result.removed.length === 1 ? '' : 's'}${result.bytesFreed !== null ? ` and freed ${result.bytesFreed} bytes` : ''}`,
          data: { removed: result.removed.map((r) => ({ image: r.image, reason: r.reason })), kept: result.kept, bytesFreed: result.bytesFreed },
        });
      }
      schedule(options.intervalMs);
    } catch (err) {
      if (closed) return;
      const message = err instanceof Error ? err.message : String(err);
      log.error({ err, retryInMs: retry }, 'registry garbage collection failed; retrying');
      options.onEvent({ type: 'registry.gc_failed', message: `registry garbage collection failed: ${message}; retrying in ${Math.round(retry / 1000)} s`, data: { code: (err as { code?: unknown }).code ?? null } });
      schedule(retry);
      retry = Math.min(retry * 2, options.intervalMs);
    }
  }

  schedule(options.firstRunMs ?? Math.min(options.intervalMs, 10 * 60_000));
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
