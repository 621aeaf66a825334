// Sends the edge's report (edge-report.ts) to the API it follows: after each apply, when a state
// changes (a bind retry, an ejection), and on a heartbeat (the API's `heartbeatMs`, 10 s until it
// says). Fire-and-forget from the data plane's point of view: one request at a time with a 5 s
// timeout, changes while one is in flight coalesce into the next, and a failure is logged once per
// change of error and kept for the edge's own /status.

import type { Logger } from 'pino';
import { describeApiFailure } from './api-failure.js';
import { reportFingerprint, type EdgeReport } from './edge-report.js';

export interface EdgeReporterOptions {
  /** The API's base URL (a trailing /v1 is accepted). */
  url: string;
  token: string;
  /** In place of the global fetch (an HTTPS API whose certificate is pinned). */
  fetch?: typeof fetch | undefined;
  log: Logger;
  /** Builds the report now (asks the workers). */
  build: () => Promise<EdgeReport>;
  /** Until the API answers with its own (default 10 s). */
  heartbeatMs?: number;
  timeoutMs?: number;
  /** Triggers closer together than this make one report (default 100 ms). */
  coalesceMs?: number;
}

export interface ReportOutcome {
  /** ISO time of the last attempt, null before any. */
  lastAt: string | null;
  lastOk: boolean | null;
  /** Why the last attempt failed, null after a success. */
  lastError: string | null;
  sent: number;
  failed: number;
  heartbeatMs: number;
}

export interface EdgeReporter {
  /** 'apply': always send; 'change': send when the state differs from what was last sent. */
  trigger(reason: 'apply' | 'change'): void;
  outcome(): ReportOutcome;
  /** Stops the heartbeat and waits for a request in flight (bounded by its timeout). */
  close(): Promise<void>;
}

const MIN_HEARTBEAT_MS = 1000;
const MAX_HEARTBEAT_MS = 300_000;

export function reportUrl(base: string): string {
  return `${base.replace(/\/+$/, '').replace(/\/v1$/, '')}/v1/edge/report`;
}

export function createEdgeReporter(options: EdgeReporterOptions): EdgeReporter {
  const { log } = options;
  const url = reportUrl(options.url);
  const timeoutMs = options.timeoutMs ?? 5000;
  const coalesceMs = options.coalesceMs ?? 100;
  const outcome: ReportOutcome = { lastAt: null, lastOk: null, lastError: null, sent: 0, failed: 0, heartbeatMs: options.heartbeatMs ?? 10_000 };
  let closed = false;
  let inFlight: Promise<void> | null = null;
  /** What the next send is for, once the one in flight is done. */
  let wanted: 'apply' | 'change' | null = null;
  let soon: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let lastSent: string | null = null;
  let loggedError: string | null = null;

  const armHeartbeat = (): void => {
    clearTimeout(heartbeat);
    if (closed) return;
    heartbeat = setTimeout(() => request('apply'), outcome.heartbeatMs);
    heartbeat.unref();
  };

  const request = (reason: 'apply' | 'change'): void => {
    if (closed) return;
    wanted = wanted === 'apply' || reason === 'apply' ? 'apply' : 'change';
    if (inFlight !== null || soon !== undefined) return;
    soon = setTimeout(() => {
      soon = undefined;
      const reasonNow = wanted ?? 'change';
      wanted = null;
      inFlight = send(reasonNow).finally(() => {
        inFlight = null;
        if (wanted !== null) request(wanted);
      });
    }, coalesceMs);
    soon.unref();
  };

  const send = async (reason: 'apply' | 'change'): Promise<void> => {
    let report: EdgeReport;
    try {
      report = await options.build();
    } catch (err) {
      log.error({ err }, 'edge report not built');
      armHeartbeat();
      return;
    }
    const fingerprint = reportFingerprint(report);
    // A change that changed nothing (a backend ejected and back before we looked) is not worth a request.
    if (reason === 'change' && fingerprint === lastSent) return;
    outcome.lastAt = new Date().toISOString();
    try {
      const res = await (options.fetch ?? fetch)(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`the API answered ${res.status}: ${text.slice(0, 300)}`);
      const answer = parseAnswer(text);
      if (answer !== null) outcome.heartbeatMs = Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, answer));
      lastSent = fingerprint;
      outcome.sent++;
      outcome.lastOk = true;
      outcome.lastError = null;
      if (loggedError !== null) log.info({ url }, 'edge report delivered again');
      loggedError = null;
    } catch (err) {
      const message = describeApiFailure(err, timeoutMs);
      outcome.failed++;
      outcome.lastOk = false;
      outcome.lastError = message;
      if (message !== loggedError) log.warn({ url, err: message }, 'edge report not delivered');
      loggedError = message;
    } finally {
      armHeartbeat();
    }
  };

  armHeartbeat();
  return {
    trigger: request,
    outcome: () => ({ ...outcome }),
    async close() {
      closed = true;
      clearTimeout(soon);
      soon = undefined;
      clearTimeout(heartbeat);
      await inFlight;
    },
  };
}

function parseAnswer(text: string): number | null {
  try {
    const body = JSON.parse(text) as { heartbeatMs?: unknown };
    return typeof body.heartbeatMs === 'number' && Number.isFinite(body.heartbeatMs) ? body.heartbeatMs : null;
  } catch {
    return null;
  }
}
