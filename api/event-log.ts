// The append-only event log: record an event with its reason, list them, and let in-process
// listeners (streams, the CLI's follow) hear new ones. An event written inside a transaction is
// announced only after that transaction commits (api/transactions.ts), so nobody hears of a change
// that was rolled back.
import { EventEmitter } from 'node:events';
import { and, asc, eq, gt, gte, inArray, isNull, like, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, events, type Event, type NewEvent } from '../db/schema/index.js';

export interface EventFilter {
  orgId: string;
  appId?: string | undefined;
  instanceId?: string | undefined;
  deploymentId?: string | undefined;
  /** One type (`deploy.succeeded`), or every type under a prefix (`runtime.*`). */
  type?: string | undefined;
  /** Only events at or after this time. */
  since?: Date | undefined;
  /** Only system events (no app). */
  systemOnly?: boolean | undefined;
  /**
   * Only the events of apps in environments matching one of these LIKE patterns (`pr-%`), and the
   * `environment.*` events of those environments: what a token bound to environments may read.
   */
  environments?: string[] | undefined;
  /** Only events with a larger id (to resume a stream). */
  afterId?: number | undefined;
  limit?: number | undefined;
}

export interface EventLog {
  /** Writes one event on its own and announces it. */
  record(event: NewEvent): Promise<Event>;
  /** Writes an event inside the caller's transaction; the caller announces it after commit. */
  insert(tx: Db, event: NewEvent): Promise<Event>;
  /** Tells in-process listeners about events that are now committed. */
  announce(rows: Event[]): void;
  list(filter: EventFilter): Promise<Event[]>;
  /** Calls the listener for every event recorded by this process; returns an unsubscribe. */
  subscribe(listener: (event: Event) => void): () => void;
}

export function createEventLog(db: Db): EventLog {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);

  async function insert(tx: Db, event: NewEvent): Promise<Event> {
    const [row] = await tx.insert(events).values(event).returning();
    if (!row) throw new Error('event insert returned no row');
    return row;
  }

  return {
    async record(event) {
      const row = await insert(db, event);
      emitter.emit('event', row);
      return row;
    },
    insert,
    announce(rows) {
      for (const row of rows) emitter.emit('event', row);
    },
    async list(filter) {
      const where: SQL[] = [eq(events.orgId, filter.orgId)];
      if (filter.appId) where.push(eq(events.appId, filter.appId));
      if (filter.instanceId) where.push(eq(events.instanceId, filter.instanceId));
      if (filter.deploymentId) where.push(eq(events.deploymentId, filter.deploymentId));
      if (filter.type) where.push(filter.type.endsWith('.*') ? like(events.type, `${escapeLike(filter.type.slice(0, -1))}%`) : eq(events.type, filter.type));
      if (filter.since) where.push(gte(events.time, filter.since));
      if (filter.systemOnly) where.push(isNull(events.appId));
      if (filter.afterId !== undefined) where.push(gt(events.id, filter.afterId));
      if (filter.environments) where.push(inEnvironments(db, filter.orgId, filter.environments));
      return db
        .select()
        .from(events)
        .where(and(...where))
        .orderBy(asc(events.id))
        .limit(Math.min(filter.limit ?? 100, 1000));
    },
    subscribe(listener) {
      emitter.on('event', listener);
      return () => emitter.off('event', listener);
    },
  };
}

/** Events of the environments' apps, or about the environments themselves (no app; `data.environment`). */
function inEnvironments(db: Db, orgId: string, patterns: string[]): SQL {
  const theirApps = db
    .select({ id: apps.id })
    .from(apps)
    .where(and(eq(apps.orgId, orgId), or(...patterns.map((p) => like(apps.environment, p)))));
  const about = and(isNull(events.appId), like(events.type, 'environment.%'), or(...patterns.map((p) => like(sql`${events.data}->>'environment'`, p))));
  return or(inArray(events.appId, theirApps), about) as SQL;
}

/** `prefix` matched literally by LIKE (its % and _ are not wildcards). */
function escapeLike(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`);
}
