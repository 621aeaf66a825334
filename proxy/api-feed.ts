// Follows the API's edge config feed (`GET /v1/edge/watch`, server-sent events): hands each
// snapshot on, reconnects with backoff, and treats a silent stream (no ping) as dead.

import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream';
import type { Logger } from 'pino';
import { describeApiFailure } from './api-failure.js';

export interface ApiFeedOptions {
  /** The API's base URL, e.g. http://127.0.0.1:7700 (a trailing /v1 is accepted). */
  url: string;
  token: string;
  /** In place of the global fetch (an HTTPS API whose certificate is pinned). */
  fetch?: typeof fetch | undefined;
  log: Logger;
  /** Called with each snapshot as parsed JSON (validated by the receiver); awaited in order. */
  onSnapshot: (snapshot: unknown) => Promise<void>;
  /** The stream is up (null), or why it is not ("api unreachable: ECONNREFUSED", "the API answered 401: ..."). */
  onStatus?: (problem: string | null) => void;
  signal: AbortSignal;
  /** The API pings every 15 s; a stream quiet for this long is reconnected (default 45 s). */
  idleTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** A `retry` event on it ends a backoff wait at once (the API just came back). */
  retryNow?: EventTarget;
}

export function watchUrl(base: string): string {
  const trimmed = base.replace(/\/+$/, '').replace(/\/v1$/, '');
  return `${trimmed}/v1/edge/watch`;
}

/** Runs until `signal` aborts; never throws for network or HTTP errors (it logs and retries). */
export async function followApiFeed(options: ApiFeedOptions): Promise<void> {
  const { log, signal } = options;
  const url = watchUrl(options.url);
  const minBackoff = options.minBackoffMs ?? 250;
  const maxBackoff = options.maxBackoffMs ?? 10_000;
  let backoff = minBackoff;
  while (!signal.aborted) {
    const received = await connectOnce(url, options).catch((err: unknown) => {
      if (!signal.aborted) {
        const problem = describeApiFailure(err);
        log.warn({ err: problem, url, retryInMs: backoff }, 'edge feed unreachable');
        options.onStatus?.(problem);
      }
      return 0;
    });
    if (signal.aborted) break;
    // A stream that delivered snapshots was healthy: start the backoff over.
    backoff = received > 0 ? minBackoff : Math.min(maxBackoff, backoff * 2);
    if (await wait(backoff, signal, options.retryNow)) backoff = minBackoff;
  }
}

/** Waits `ms` unless aborted or told to retry now; true when told. */
function wait(ms: number, signal: AbortSignal, retryNow: EventTarget | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (early: boolean): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', aborted);
      retryNow?.removeEventListener('retry', woken);
      resolve(early);
    };
    const aborted = (): void => done(false);
    const woken = (): void => done(true);
    const timer = setTimeout(() => done(false), ms);
    signal.addEventListener('abort', aborted, { once: true });
    retryNow?.addEventListener('retry', woken, { once: true });
  });
}

/** One watch connection; resolves with the number of snapshots received when the stream ends. */
async function connectOnce(url: string, options: ApiFeedOptions): Promise<number> {
  const idle = new AbortController();
  const signal = AbortSignal.any([options.signal, idle.signal]);
  const idleTimeoutMs = options.idleTimeoutMs ?? 45_000;
  let idleTimer = setTimeout(() => idle.abort(new Error(`no data for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  const touch = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => idle.abort(new Error(`no data for ${idleTimeoutMs} ms`)), idleTimeoutMs);
  };
  let received = 0;
  try {
    const res = await (options.fetch ?? fetch)(url, { headers: { authorization: `Bearer ${options.token}`, accept: 'text/event-stream' }, signal });
    if (!res.ok || res.body === null) {
      const body = await res.text().catch(() => '');
      throw new Error(`the API answered ${res.status} at ${url}: ${body.slice(0, 200)}`);
    }
    options.log.info({ url }, 'edge feed connected');
    options.onStatus?.(null);
    const messages = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    // Every message (the API pings every 15 s) proves the stream alive.
    for await (const message of messages as unknown as AsyncIterable<EventSourceMessage>) {
      touch();
      if (message.event !== 'config') continue;
      let snapshot: unknown;
      try {
        snapshot = JSON.parse(message.data);
      } catch {
        options.log.error({ id: message.id }, 'edge feed sent a snapshot that is not JSON');
        continue;
      }
      received++;
      await options.onSnapshot(snapshot);
    }
    if (!options.signal.aborted) {
      options.log.warn({ url }, 'edge feed closed by the API');
      options.onStatus?.('the API closed the feed; reconnecting');
    }
    return received;
  } catch (err) {
    if (received > 0 && !options.signal.aborted) {
      const problem = describeApiFailure(err);
      options.log.warn({ err: problem, url }, 'edge feed lost');
      options.onStatus?.(`feed lost: ${problem}; reconnecting`);
      return received;
    }
    throw err;
  } finally {
    clearTimeout(idleTimer);
  }
}
