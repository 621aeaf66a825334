// `since` of the list routes (logs, events): an age back from now or an ISO 8601 time.
import { PierError } from './pier-error.js';

/** `30s`, `10m`, `2h`, `1d` back from now, or an ISO 8601 time. */
export function parseSince(value: string, now: Date): Date {
  const m = /^(\d+)(s|m|h|d)$/.exec(value);
  if (m?.[1] && m[2]) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
    return new Date(now.getTime() - Number(m[1]) * unit);
  }
  const time = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) {
    throw new PierError('E_BAD_REQUEST', `since must be a duration like 30s, 10m, 2h or 1d, or an ISO time, not "${value}"`, {
      status: 400,
      hint: 'e.g. since=10m or since=2026-01-02T03:04:05Z',
      details: [{ path: 'since', message: 'not a duration or ISO time' }],
    });
  }
  return time;
}
