// When an instance counts ready for a rollout (its deploy verdict, and the plan's "free a slot
// once the new ones are ready"). An instance with a check is ready once the check passed. One
// without a check must have kept running for MIN_UPTIME_MS: a container that exits right after
// it starts (a bad command, a missing file) would otherwise be seen running by the pass that
// started it and make a deploy succeed that never ran. Pure. docs/manifest.md, "Readiness".
import type { Instance } from '../../db/schema/index.js';
import type { ContainerInfo } from '../runtime/runtime.js';

/** How long an instance without a check must run before a rollout counts it ready. */
export const MIN_UPTIME_MS = 1_000;

type Row = Pick<Instance, 'health' | 'startedAt'>;
type Seen = Pick<ContainerInfo, 'state' | 'startedAt'> | undefined;

/**
 * When the instance is (or becomes, if it keeps running) ready: null while it does not run or
 * its check has not passed. An instance whose start time is unknown counts from now.
 */
export function readyAt(row: Row, container: Seen, now: Date): Date | null {
  if (container?.state !== 'running') return null;
  if (row.health === 'healthy') return now;
  if (row.health !== 'none') return null;
  const started = container.startedAt ?? row.startedAt;
  if (!started) return now;
  return new Date(started.getTime() + MIN_UPTIME_MS);
}

export function isReady(row: Row, container: Seen, now: Date): boolean {
  const at = readyAt(row, container, now);
  return at !== null && at <= now;
}

/** The earliest moment one of these not-yet-ready instances becomes ready, if it keeps running. */
export function nextReadyAt(items: { row: Row; container: Seen }[], now: Date): Date | null {
  let next: Date | null = null;
  for (const { row, container } of items) {
    const at = readyAt(row, container, now);
    if (at && at > now && (!next || at < next)) next = at;
  }
  return next;
}
