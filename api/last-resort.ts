// The process-wide last resort of `pier server`: an error no code path caught. A rejected promise
// nobody awaited is logged with its context and the server keeps serving (it ended one task,
// not the process's state). An uncaught exception leaves state unknown: it is logged and the
// process exits non-zero for its supervisor to restart it — except a known library defect that
// is harmless to the process, which is logged and counted.
import type { Logger } from 'pino';

export interface LastResortOptions {
  log: Logger;
  /** Ends the process (the entry point owns process.exit). */
  exit: (code: number) => void;
  /** Where the handlers go; the process by default (tests pass an EventEmitter). */
  target?: NodeJS.EventEmitter;
}

export interface LastResort {
  /** How many rejections and tolerated exceptions were caught so far. */
  counts(): { unhandledRejections: number; toleratedExceptions: number };
  /** Removes the handlers. */
  remove(): void;
}

/** Exit code after an uncaught exception (EX_SOFTWARE). */
export const EXIT_UNCAUGHT = 70;

export function installLastResort(options: LastResortOptions): LastResort {
  const target = options.target ?? process;
  const log = options.log.child({ component: 'last-resort' });
  let unhandledRejections = 0;
  let toleratedExceptions = 0;

  const onRejection = (reason: unknown): void => {
    unhandledRejections++;
    log.error({ err: reason, count: unhandledRejections }, 'unhandled promise rejection; the server keeps serving');
  };
  const onException = (err: unknown, origin?: string): void => {
    const known = knownHarmless(err);
    if (known) {
      toleratedExceptions++;
      log.error({ err, known, count: toleratedExceptions }, 'uncaught exception from a known library defect; the server keeps serving');
      return;
    }
    log.fatal({ err, origin }, 'uncaught exception; stopping so that a supervisor restarts the server');
    log.flush?.();
    options.exit(EXIT_UNCAUGHT);
  };
  target.on('unhandledRejection', onRejection);
  target.on('uncaughtException', onException);
  return {
    counts: () => ({ unhandledRejections, toleratedExceptions }),
    remove() {
      target.off('unhandledRejection', onRejection);
      target.off('uncaughtException', onException);
    },
  };
}

/**
 * postgres.js 3.4.x writes a buffered message from a setImmediate after the connection's socket
 * was closed and set to null (porsager/postgres#1154, #1208; fix in PR #1168, not released):
 * `TypeError: Cannot read properties of null (reading 'write') at Immediate.nextWrite
 * (postgres/src/connection.js)`. Thrown from a timer, it has no caller to reach. The process's
 * own state is intact: the query written at that moment never settles and that one connection
 * stays unusable, which is far cheaper than ending the process (and the edge with it). Pier's
 * code no longer reaches it (db/database.ts keeps its locks off reserved connections); this
 * recognises exactly that failure should another path reach it, and nothing else.
 */
export function knownHarmless(err: unknown): string | null {
  if (!(err instanceof TypeError)) return null;
  if (err.message !== "Cannot read properties of null (reading 'write')") return null;
  const frame = (err.stack ?? '').split('\n')[1] ?? '';
  if (/\bat (Immediate\.)?nextWrite \(.*[\\/]postgres[\\/](cjs[\\/])?src[\\/]connection\.js:\d+:\d+\)$/.test(frame.trim())) {
    return 'postgres.js wrote to a closed connection (porsager/postgres#1154)';
  }
  return null;
}
