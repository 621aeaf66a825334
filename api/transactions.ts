// Runs a change of several rows as one transaction with its events: the rows and their events are
// committed together or not at all, and the events are announced only after the commit. Named
// checkpoints between writes let a test interrupt a change anywhere (a no-op in production).
//
// Inside run(), use only `t.tx`: on the embedded database a query on the outer handle waits for
// the transaction to end, which never comes.
import type { Db } from '../db/database.js';
import type { Event, NewEvent } from '../db/schema/index.js';
import { endsSession, isDatabaseUnavailable } from './database-errors.js';
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

/** How long a transaction whose session looks dead waits for the driver to confirm it. */
const SESSION_CLOSE_WAIT_MS = 2_000;

/** Resolves after `ms` unless the transaction ended meanwhile, in which case it never does. */
function untilClosedOr(ms: number, ended: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(() => {
      if (!ended()) resolve();
    }, ms);
  });
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
      let ended = false;
      let result;
      try {
        result = await db.transaction(async (tx) => {
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
          try {
            return await fn(t);
          } catch (err) {
            // postgres.js 3.4.9 answers a failed transaction with ROLLBACK on its connection even
            // when that connection has just closed, and then crashes the process writing to a
            // null socket (porsager/postgres#1154, #1208). When the error says the session died,
            // wait for the driver to see the close (it then rejects the transaction itself, and
            // the server has rolled it back). Only if the session turns out alive — postgres.js
            // may hand a dead session's FATAL error to a later query — is the error handed back,
            // for a ROLLBACK on a live connection.
            if (endsSession(err) || isDatabaseUnavailable(err)) await untilClosedOr(SESSION_CLOSE_WAIT_MS, () => ended);
            throw err;
          }
        });
      } finally {
        ended = true;
      }
      events.announce(recorded);
      return result;
    },
  };
}
