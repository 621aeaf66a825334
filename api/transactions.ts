// Runs a change of several rows as one transaction with its events: the rows and their events are
// committed together or not at all, and the events are announced only after the commit. Named
// checkpoints between writes let a test interrupt a change anywhere (a no-op in production).
//
// Inside run(), use only `t.tx`: on the embedded database a query on the outer handle waits for
// the transaction to end, which never comes.
import type { Db } from '../db/database.js';
import type { Event, NewEvent } from '../db/schema/index.js';
import type { EventLog } from './event-log.js';

/** Called at each named point between writes; a test makes it throw or kill the connection. */
export type Checkpoint = (name: string, tx: Db) => void | Promise<void>;

export interface Txn {
  tx: Db;
  /** Writes an event in this transaction; it is announced after the commit. */
  record(event: NewEvent): Promise<Event>;
  checkpoint(name: string): Promise<void>;
}

export interface Transactions {
  run<T>(fn: (t: Txn) => Promise<T>): Promise<T>;
}

export interface TransactionsOptions {
  db: Db;
  events: EventLog;
  checkpoint?: Checkpoint | undefined;
}

export function createTransactions(options: TransactionsOptions): Transactions {
  const { db, events } = options;
  const checkpoint = options.checkpoint;
  return {
    async run(fn) {
      const recorded: Event[] = [];
      const result = await db.transaction(async (tx) => {
        const t: Txn = {
          tx: tx as unknown as Db,
          async record(event) {
            const row = await events.insert(tx as unknown as Db, event);
            recorded.push(row);
            return row;
          },
          async checkpoint(name) {
            if (checkpoint) await checkpoint(name, tx as unknown as Db);
          },
        };
        return fn(t);
      });
      events.announce(recorded);
      return result;
    },
  };
}
