// What happens to the platform itself, as system events (no app; the admin org's, read with an
// org-wide token): the Docker engine and the database going away and coming back, edges that stop
// reporting. Each server process watches its own view of the engine and the database (two
// servers on one database both say when they lose the engine: each event names its server); an
// edge's silence is recorded once, by whichever server marks it first in the database.
//
// The database cannot take an event while it is down: its outage is recorded when it answers
// again, as database.unavailable (with when it went away) followed by database.available.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { and, isNull, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { edges, type NewEvent } from '../db/schema/index.js';
import type { EventLog } from './event-log.js';
import { isPierError } from './pier-error.js';
import type { Runtime } from './runtime/runtime.js';
import { EDGE_LIVE_MS } from './served-state.js';

export interface SystemMonitorOptions {
  db: Db;
  runtime: Runtime;
  events: EventLog;
  /** The org system events belong to (the admin org), once it is known. */
  orgId: () => string | undefined;
  log: Logger;
  /** This server, as events name it (default hostname:pid). */
  server?: string | undefined;
  /** Milliseconds between two looks (default 5 000). */
  intervalMs?: number | undefined;
}

export interface SystemMonitor {
  /** One look at the engine, the database and the edges; never throws. */
  tick(): Promise<void>;
  /**
   * Someone else saw a dependency fail (a /healthz probe): taken as this monitor's own look, so
   * an outage shorter than the look interval is still on record.
   */
  notice(dependency: 'database' | 'runtime', err: unknown): void;
  /** Records a system event now; a failure is logged, never thrown. */
  record(event: Omit<NewEvent, 'orgId' | 'appId'>): Promise<void>;
  start(): void;
  close(): void;
}

interface SilentEdge {
  id: string;
  name: string;
  appliedVersion: number | null;
  lastSeenAt: Date;
}

interface Outage {
  since: Date;
  reason: string;
  message: string;
}

export function createSystemMonitor(options: SystemMonitorOptions): SystemMonitor {
  const { db, runtime, events } = options;
  const log = options.log.child({ component: 'system-monitor' });
  const server = options.server ?? `${hostname()}:${process.pid}`;
  const intervalMs = options.intervalMs ?? 5000;
  let engineDown: Outage | null = null;
  let engineRecorded = false;
  let databaseDown: Outage | null = null;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;

  async function record(event: Omit<NewEvent, 'orgId' | 'appId'>): Promise<boolean> {
    const orgId = options.orgId();
    if (!orgId) return false;
    try {
      await events.record({ ...event, orgId, appId: null, data: { server, ...event.data } });
      return true;
    } catch (err) {
      log.warn({ err, type: event.type }, 'system event not recorded; it is tried again at the next look');
      return false;
    }
  }

  /**
   * One look at the database: the edges it found silent (marked in the same statement: the look
   * costs one query, not a `select 1` besides), or null when it does not answer.
   */
  async function lookAtDatabase(): Promise<SilentEdge[] | null> {
    let gone: SilentEdge[];
    try {
      gone = options.orgId() ? await markSilentEdges() : (await db.execute(sql`select 1`), []);
    } catch (err) {
      if (!databaseDown) {
        databaseDown = { since: new Date(), ...why(err) };
        log.warn({ reason: databaseDown.reason }, 'the database does not answer');
      }
      return null;
    }
    if (databaseDown) {
      const outage = databaseDown;
      const downMs = Date.now() - outage.since.getTime();
      const recorded =
        (await record({ type: 'database.unavailable', reason: outage.reason, message: `the database did not answer from ${outage.since.toISOString()}: ${outage.message}`, data: { since: outage.since.toISOString() } })) &&
        (await record({ type: 'database.available', reason: 'answering', message: `the database answers again after ${seconds(downMs)}`, data: { since: outage.since.toISOString(), downMs } }));
      if (recorded) databaseDown = null;
      log.info({ downMs }, 'the database answers again');
    }
    return gone;
  }

  async function lookAtEngine(canRecord: boolean): Promise<void> {
    try {
      await runtime.ping();
    } catch (err) {
      if (!engineDown) {
        engineDown = { since: new Date(), ...why(err) };
        engineRecorded = false;
        log.warn({ reason: engineDown.reason }, 'the container engine does not answer');
      }
      if (!engineRecorded && canRecord) {
        engineRecorded = await record({
          type: 'runtime.unavailable',
          reason: engineDown.reason,
          message: `the container engine does not answer: ${engineDown.message}; instances cannot start, stop or be checked until it does`,
          data: { since: engineDown.since.toISOString() },
        });
      }
      return;
    }
    if (!engineDown) return;
    const outage = engineDown;
    const downMs = Date.now() - outage.since.getTime();
    if (!canRecord) return;
    if (!engineRecorded) {
      // It came back before its outage could be written (the database was away too).
      await record({ type: 'runtime.unavailable', reason: outage.reason, message: `the container engine did not answer from ${outage.since.toISOString()}: ${outage.message}`, data: { since: outage.since.toISOString() } });
    }
    if (await record({ type: 'runtime.available', reason: 'answering', message: `the container engine answers again after ${seconds(downMs)}`, data: { since: outage.since.toISOString(), downMs } })) {
      engineDown = null;
      log.info({ downMs }, 'the container engine answers again');
    }
  }

  /** Edges whose reports stopped: marked once in the database, so one server records each. */
  function markSilentEdges(): Promise<SilentEdge[]> {
    return db
      .update(edges)
      .set({ disconnectedAt: sql`now()` })
      .where(and(isNull(edges.disconnectedAt), lt(edges.lastSeenAt, sql`now() - make_interval(secs => ${EDGE_LIVE_MS / 1000})`)))
      .returning({ id: edges.id, name: edges.name, appliedVersion: edges.appliedVersion, lastSeenAt: edges.lastSeenAt });
  }

  async function recordSilentEdges(gone: SilentEdge[]): Promise<void> {
    for (const e of gone) {
      await record({
        type: 'edge.disconnected',
        reason: 'silent',
        message: `edge "${e.name}" has not reported since ${e.lastSeenAt.toISOString()}; its endpoints count as not served`,
        data: { edge: { id: e.id, name: e.name }, appliedVersion: e.appliedVersion, lastSeenAt: e.lastSeenAt.toISOString() },
      });
    }
  }

  async function tick(): Promise<void> {
    try {
      const gone = await lookAtDatabase();
      await lookAtEngine(gone !== null);
      if (gone) await recordSilentEdges(gone);
    } catch (err) {
      log.warn({ err }, 'system look failed; the next one tries again');
    }
  }

  return {
    tick() {
      // One look at a time: a slow engine must not pile looks up.
      running ??= tick().finally(() => (running = null));
      return running;
    },
    notice(dependency, err) {
      if (dependency === 'database' && !databaseDown) {
        databaseDown = { since: new Date(), ...why(err) };
        log.warn({ reason: databaseDown.reason }, 'the database does not answer');
      }
      if (dependency === 'runtime' && !engineDown) {
        engineDown = { since: new Date(), ...why(err) };
        engineRecorded = false;
        log.warn({ reason: engineDown.reason }, 'the container engine does not answer');
      }
    },
    async record(event) {
      await record(event);
    },
    start() {
      timer = setInterval(() => void this.tick(), intervalMs);
      timer.unref();
    },
    close() {
      clearInterval(timer);
    },
  };
}

function why(err: unknown): { reason: string; message: string } {
  if (isPierError(err)) return { reason: err.code, message: err.message };
  const e = err as { code?: unknown; message?: unknown };
  return { reason: typeof e.code === 'string' ? e.code : 'EUNKNOWN', message: typeof e.message === 'string' ? e.message : String(err) };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
