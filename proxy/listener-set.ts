// The listening sockets of one edge: those bound, and those that could not bind (EADDRINUSE,
// EACCES, EADDRNOTAVAIL ...). A failed one does not hold back the rest of a snapshot: it is retried
// with backoff (1 s doubling to 30 s) until it binds, and then serves at once, or until a snapshot
// no longer has it. Retries run through the edge's apply queue, so they never race an apply.

import type { Logger } from 'pino';
import type { FdBudget } from './fd-budget.js';
import { BindError, Listener, type ConnectionSink } from './listener.js';
import type { ListenerSpec } from './route-table.js';
import type { TcpIo } from './tcp-io/tcp-io.js';

export interface ListenerFailure {
  code: string;
  message: string;
}

/** What one address:port is doing. */
export type ListenerState = { state: 'bound' } | { state: 'failed'; error: ListenerFailure; retryAt: number };

export interface ListenerSetOptions {
  sink: ConnectionSink;
  io: TcpIo;
  log: Logger;
  budget: FdBudget;
  /** Runs `work` after every apply queued before it (the edge's apply queue). */
  schedule: (work: () => Promise<void>) => void;
  /** A failed listener bound, or failed with another error. */
  onChange: () => void;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

/** Listeners an apply opened, not yet serving, and those that failed to bind. */
export interface OpenAttempt {
  opened: Listener[];
  failed: { spec: ListenerSpec; error: ListenerFailure }[];
}

interface FailedBind {
  spec: ListenerSpec;
  error: ListenerFailure;
  backoffMs: number;
  retryAt: number;
  timer: NodeJS.Timeout | undefined;
}

export class ListenerSet {
  /** Bound listeners by key (`address:port`). */
  readonly bound = new Map<string, Listener>();
  private readonly failed = new Map<string, FailedBind>();
  private readonly baseMs: number;
  private readonly maxMs: number;
  private closed = false;

  constructor(private readonly options: ListenerSetOptions) {
    this.baseMs = options.retryBaseMs ?? 1000;
    this.maxMs = options.retryMaxMs ?? 30_000;
  }

  /** Binds every spec neither bound nor already failing; nothing serves until commit(). */
  async open(specs: Iterable<ListenerSpec>): Promise<OpenAttempt> {
    const added = [...specs].filter((spec) => !this.bound.has(spec.key) && !this.failed.has(spec.key));
    const results = await Promise.allSettled(added.map((spec) => this.bind(spec)));
    const attempt: OpenAttempt = { opened: [], failed: [] };
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') attempt.opened.push(r.value);
      else attempt.failed.push({ spec: added[i]!, error: failure(r.reason) });
    });
    return attempt;
  }

  /** The edge gave up on this apply (it is closing): close what it opened. */
  abandon(attempt: OpenAttempt): void {
    for (const listener of attempt.opened) listener.close();
  }

  /**
   * The route table with `specs` is live: `attempt`'s listeners serve, its failures are retried,
   * and listeners (or retries) of addresses no longer in `specs` stop.
   */
  commit(attempt: OpenAttempt, specs: ReadonlyMap<string, ListenerSpec>): void {
    for (const listener of attempt.opened) {
      this.bound.set(listener.key, listener);
      listener.activate();
    }
    for (const { spec, error } of attempt.failed) {
      this.options.log.warn({ listener: spec.key, endpoint: spec.endpointId, code: error.code, retryInMs: this.baseMs }, 'listener cannot bind; retrying');
      this.scheduleRetry({ spec, error, backoffMs: this.baseMs, retryAt: 0, timer: undefined });
    }
    for (const [key, listener] of this.bound) {
      if (specs.has(key)) continue;
      listener.close();
      this.bound.delete(key);
    }
    for (const [key, entry] of this.failed) {
      const spec = specs.get(key);
      if (spec !== undefined) {
        entry.spec = spec;
        continue;
      }
      clearTimeout(entry.timer);
      this.failed.delete(key);
      this.options.log.info({ listener: key }, 'listener no longer wanted; bind retries stop');
    }
  }

  state(key: string): ListenerState {
    const failed = this.failed.get(key);
    return failed === undefined ? { state: 'bound' } : { state: 'failed', error: failed.error, retryAt: failed.retryAt };
  }

  /** Stops every retry and closes every listener; returns them to wait for their `closed`. */
  closeAll(): Listener[] {
    this.closed = true;
    for (const entry of this.failed.values()) clearTimeout(entry.timer);
    this.failed.clear();
    const listeners = [...this.bound.values()];
    for (const listener of listeners) listener.close();
    this.bound.clear();
    return listeners;
  }

  private bind(spec: ListenerSpec): Promise<Listener> {
    const { sink, io, log, budget } = this.options;
    return Listener.open(spec, sink, io, log, budget);
  }

  private scheduleRetry(entry: FailedBind): void {
    entry.retryAt = Date.now() + entry.backoffMs;
    entry.timer = setTimeout(() => this.options.schedule(() => this.retry(entry)), entry.backoffMs);
    entry.timer.unref();
    this.failed.set(entry.spec.key, entry);
  }

  private async retry(entry: FailedBind): Promise<void> {
    // Removed (or replaced) by an apply since the timer was set.
    if (this.closed || this.failed.get(entry.spec.key) !== entry) return;
    const { log } = this.options;
    let listener: Listener;
    try {
      listener = await this.bind(entry.spec);
    } catch (err) {
      const error = failure(err);
      const changed = error.code !== entry.error.code;
      entry.error = error;
      entry.backoffMs = Math.min(this.maxMs, entry.backoffMs * 2);
      this.scheduleRetry(entry);
      const fields = { listener: entry.spec.key, code: error.code, retryInMs: entry.backoffMs };
      if (changed) {
        log.warn(fields, 'listener still cannot bind, with another error');
        this.options.onChange();
      } else {
        log.debug(fields, 'listener still cannot bind');
      }
      return;
    }
    if (this.closed) {
      listener.close();
      return;
    }
    this.failed.delete(entry.spec.key);
    this.bound.set(listener.key, listener);
    // The route table already routes this address: serve at once.
    listener.activate();
    log.info({ listener: listener.key, endpoint: entry.spec.endpointId }, 'listener bound after retrying');
    this.options.onChange();
  }
}

function failure(err: unknown): ListenerFailure {
  if (err instanceof BindError) return { code: err.code, message: err.message };
  return { code: 'EUNKNOWN', message: (err as Error)?.message ?? String(err) };
}
