// An app's logs across its instances: which containers to read (running ones, and the stopped
// ones the reconciler keeps, whose logs explain failures), each line tagged with its instance and
// release, merged by time; or followed live, picking up instances started meanwhile.
import { and, desc, eq, isNotNull } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { instances, releases, type Instance } from '../db/schema/index.js';
import { isPierError } from './pier-error.js';
import type { LogLine, Runtime } from './runtime/runtime.js';
import type { LogLineView } from './views.js';

export interface LogSelection {
  appId: string;
  process?: string | undefined;
  instance?: string | undefined;
  grep?: RegExp | undefined;
  since?: Date | undefined;
  /** The last N lines of the merged result. */
  tail: number;
}

export interface LogReader {
  /** Lines up to now (or `until`), oldest first. */
  read(selection: LogSelection & { until?: Date }): Promise<LogLineView[]>;
  /** The backlog as `read` gives it, then new lines as they come, until the signal aborts. */
  follow(selection: LogSelection, signal: AbortSignal, emit: (line: LogLineView) => void): Promise<void>;
}

export interface LogReaderOptions {
  db: Db;
  runtime: Runtime;
  log: Logger;
  /** How often a follow looks for new instances. */
  relistMs?: number;
}

/** Stopped instances read besides the live ones: the reconciler keeps this many containers. */
const KEPT_STOPPED = 10;
/** With a grep, this many lines of each instance are searched for the last N matches. */
const GREP_SCAN_LINES = 10_000;

interface Source {
  row: Instance;
  containerId: string;
  release: number;
}

export function createLogReader(options: LogReaderOptions): LogReader {
  const { db, runtime } = options;
  const relistMs = options.relistMs ?? 3_000;
  const log = options.log.child({ component: 'log-reader' });

  async function sources(sel: LogSelection): Promise<Source[]> {
    const where = [eq(instances.appId, sel.appId), isNotNull(instances.containerId)];
    if (sel.process) where.push(eq(instances.process, sel.process));
    if (sel.instance) where.push(eq(instances.id, sel.instance));
    const rows = await db
      .select({ row: instances, release: releases.version })
      .from(instances)
      .innerJoin(releases, eq(releases.id, instances.releaseId))
      .where(and(...where))
      .orderBy(desc(instances.createdAt))
      .limit(200);
    const live = rows.filter(({ row }) => isLive(row));
    const stopped = rows.filter(({ row }) => !isLive(row)).slice(0, KEPT_STOPPED);
    return [...live, ...stopped].map(({ row, release }) => ({ row, containerId: row.containerId ?? '', release }));
  }

  const tag = (source: Source, line: LogLine): LogLineView => ({
    time: line.time.toISOString(),
    instance: source.row.id,
    process: source.row.process,
    release: source.release,
    stream: line.stream,
    line: line.line,
  });

  async function readOne(source: Source, sel: LogSelection & { until?: Date }, signal: AbortSignal): Promise<{ time: number; view: LogLineView }[]> {
    const out: { time: number; view: LogLineView }[] = [];
    try {
      const lines = runtime.streamLogs(source.containerId, {
        since: sel.since,
        until: sel.until,
        tail: sel.grep ? Math.max(sel.tail, GREP_SCAN_LINES) : sel.tail,
        follow: false,
        signal,
      });
      for await (const line of lines) {
        if (sel.grep && !sel.grep.test(line.line)) continue;
        out.push({ time: line.time.getTime(), view: tag(source, line) });
      }
    } catch (err) {
      // A container removed since the row was read has no logs left to show; not an error.
      if (isPierError(err) && err.code === 'E_CONTAINER_NOT_FOUND') return out;
      throw err;
    }
    return out;
  }

  async function read(sel: LogSelection & { until?: Date }): Promise<LogLineView[]> {
    const signal = new AbortController().signal;
    const perSource = await Promise.all((await sources(sel)).map((s) => readOne(s, sel, signal)));
    // Stable: lines with the same time keep their order within an instance.
    const merged = perSource.flat().sort((a, b) => a.time - b.time);
    return merged.slice(Math.max(0, merged.length - sel.tail)).map((l) => l.view);
  }

  async function follow(sel: LogSelection, signal: AbortSignal, emit: (line: LogLineView) => void): Promise<void> {
    // The backlog ends and the live part starts at one instant, so no line is shown twice or
    // skipped (the engine compares both bounds with its own clock; on one host that is ours).
    const cut = new Date();
    for (const line of await read({ ...sel, until: cut })) {
      if (signal.aborted) return;
      emit(line);
    }
    const followed = new Set<string>();
    const followOne = async (source: Source): Promise<void> => {
      try {
        for await (const line of runtime.streamLogs(source.containerId, { since: cut, follow: true, signal })) {
          if (sel.grep && !sel.grep.test(line.line)) continue;
          emit(tag(source, line));
        }
      } catch (err) {
        if (!(isPierError(err) && err.code === 'E_CONTAINER_NOT_FOUND')) log.warn({ err, instance: source.row.id }, 'log follow failed');
      }
    };
    const streams: Promise<void>[] = [];
    while (!signal.aborted) {
      for (const source of await sources(sel).catch((err: unknown) => (log.warn({ err }, 'listing instances failed'), []))) {
        // A stopped container's stream ends at once; following each container once is enough.
        if (followed.has(source.containerId)) continue;
        followed.add(source.containerId);
        streams.push(followOne(source));
      }
      await sleep(relistMs, signal);
    }
    await Promise.all(streams);
  }

  return { read, follow };
}

function isLive(row: Instance): boolean {
  return row.desiredState === 'running' || row.observedState === 'running' || row.observedState === 'starting';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
