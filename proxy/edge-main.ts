// The standalone edge program (`pier edge`, and the edge side of `pier server`): builds the edge
// processes, the config source (a snapshot file re-read on demand, or the API's watch stream), the
// state file, the report to the API it follows and the admin server, and stops them in reverse
// order. The CLI command owns signals and process.exit.

import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { followApiFeed } from './api-feed.js';
import { createEdgeCluster } from './edge-cluster.js';
import { loadEdgeId } from './edge-identity.js';
import type { ControlState } from './edge-metrics-text.js';
import { createInProcessPool, type EdgePool, type RollResult } from './edge-pool.js';
import { buildEdgeReport, servedAcmeTokens } from './edge-report.js';
import { createEdgeReporter, type EdgeReporter } from './edge-reporter.js';
import { EdgeStateFile } from './edge-state-file.js';
import { startAdminServer } from './metrics-server.js';
import { selectTcpIo, type TcpIoChoice } from './tcp-io/select-tcp-io.js';
import type { TcpIoMode } from './tcp-io/tcp-io.js';
import { parseEdgeConfig } from './validate-edge-config.js';

export type EdgeSource =
  | { kind: 'file'; path: string; watch: boolean }
  // `fetch`: in place of the global one, e.g. one that pins the API's certificate (cli/api-transport.ts).
  | { kind: 'api'; url: string; token: string; fetch?: typeof fetch | undefined };

export interface EdgeMainOptions {
  source: EdgeSource;
  /** Where the last good snapshot is kept (api mode reads it at start). */
  dataDir: string;
  /** 1 runs the data plane in this process (unless `cluster`); more forks a cluster. */
  workers: number;
  /** Fork a cluster even for one worker, so workers can be rolled (`pier server`). */
  cluster?: boolean;
  /** Who this edge is in its reports to the API (api source only): --name, and Pier's version. */
  name: string;
  version: string;
  admin: { host: string; port: number };
  drainTimeoutMs: number;
  /** TCP I/O of the data plane: `auto` picks handle where Node allows it (select-tcp-io.ts). */
  io: TcpIoChoice;
  log: Logger;
  logLevel: string;
}

export interface RunningEdge {
  adminUrl: string;
  /** The TCP I/O the data plane runs on. */
  io: TcpIoMode;
  /** Version served once start() returned (null: nothing yet, e.g. API down and no state file). */
  version: number | null;
  /** The id in the reports (api source), else null. */
  id: string | null;
  /** File mode: re-reads the snapshot file and applies it; api mode: no-op. */
  reload(): Promise<void>;
  /** Replaces the worker processes one by one without closing a listening socket (edge-cluster.ts). */
  roll(): Promise<RollResult>;
  /** Api source: the API is back (its supervisor knows): reconnect the feed now, not after the backoff. */
  reconnect(): void;
  /** Stops the feed, drains every edge process, closes the admin server. */
  stop(): Promise<void>;
}

export async function startEdgeMain(options: EdgeMainOptions): Promise<RunningEdge> {
  const log = options.log;
  const source = options.source;
  const stateFile = await openStateFile(options.dataDir, source, log);
  const control: ControlState = {
    version: null,
    source: source.kind === 'file' ? `file ${resolve(source.path)}` : `api ${source.url}`,
    applies: { applied: 0, ignored: 0, rejected: 0 },
    lastError: null,
    feedError: null,
  };
  const edgeId = source.kind === 'api' ? await loadEdgeId(resolve(options.dataDir)) : null;
  /** The ACME challenge tokens of the snapshot every process applied (reported with `applied`). */
  let acmeTokens: string[] = [];

  const { io } = await selectTcpIo(options.io, log);
  let reporter: EdgeReporter | null = null;
  const processOptions = { drainTimeoutMs: options.drainTimeoutMs, io, onStateChange: () => reporter?.trigger('change') };
  const pool: EdgePool =
    options.workers > 1 || options.cluster === true
      ? await createEdgeCluster({ ...processOptions, workers: options.workers, log, logLevel: options.logLevel })
      : createInProcessPool({ ...processOptions, log: log.child({ component: 'edge' }) });
  if (source.kind === 'api' && edgeId !== null) {
    const identity = { id: edgeId, name: options.name, version: options.version, pid: process.pid };
    reporter = createEdgeReporter({
      url: source.url,
      token: source.token,
      fetch: source.fetch,
      log: log.child({ component: 'edge-report' }),
      build: async () =>
        buildEdgeReport({ identity, applied: control.version, lastError: control.feedError ?? control.lastError, reports: await pool.reports(), acmeTokens, now: new Date() }),
    });
  }

  /** Validates, applies in every process, and persists what all of them accepted. */
  const offer = async (snapshot: unknown, from: string, persist: boolean): Promise<void> => {
    const check = parseEdgeConfig(snapshot);
    if (!check.ok) {
      control.applies.rejected++;
      control.lastError = `${from}: invalid snapshot: ${check.problem}`;
      log.error({ from, reason: check.problem }, 'edge snapshot rejected');
      return;
    }
    const config = check.config;
    if (control.version !== null && config.version <= control.version) {
      control.applies.ignored++;
      log.info({ from, version: config.version, serving: control.version }, 'edge snapshot not newer; ignored');
      return;
    }
    const results = await pool.apply(config);
    const failed = results.find((r) => !r.ok);
    if (failed !== undefined && !failed.ok) {
      control.applies.rejected++;
      control.lastError = `${from}: ${failed.reason}`;
      log.error({ from, version: config.version, reason: failed.reason }, 'edge snapshot rejected');
      reporter?.trigger('apply');
      return;
    }
    control.applies.applied++;
    control.version = config.version;
    acmeTokens = servedAcmeTokens(config);
    control.lastError = null;
    // Endpoints whose listener could not bind (in any worker) are being retried: not a rejection.
    const notServing = new Set(results.flatMap((r) => (r.ok && r.applied ? r.endpoints.filter((e) => e.state === 'failed').map((e) => e.name ?? e.id) : [])));
    log.info({ from, version: config.version, endpoints: config.endpoints.length, failed: [...notServing] }, 'edge snapshot applied');
    reporter?.trigger('apply');
    if (persist && stateFile !== null) {
      await stateFile.write(config).catch((err: unknown) => log.error({ err, path: stateFile.path }, 'edge state file not written'));
    }
  };

  const abort = new AbortController();
  const retryNow = new EventTarget();
  let feed: Promise<void> = Promise.resolve();
  let watcher: FSWatcher | undefined;
  // Offers run one at a time, in arrival order.
  let chain: Promise<void> = Promise.resolve();
  const enqueue = (work: () => Promise<void>): Promise<void> => {
    chain = chain.then(work, work);
    return chain;
  };

  const readSnapshotFile = async (path: string): Promise<void> => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      control.applies.rejected++;
      control.lastError = `cannot read ${path}: ${(err as Error).message}`;
      log.error({ path, err: (err as Error).message }, 'edge snapshot file not read');
      return;
    }
    await offer(parsed, path, true);
  };

  try {
    if (source.kind === 'file') {
      await enqueue(() => readSnapshotFile(source.path));
      if (control.version === null) throw new Error(control.lastError ?? `${source.path}: no snapshot applied`);
      if (source.watch) {
        let timer: NodeJS.Timeout | undefined;
        // Editors write in several steps: settle for 100 ms before re-reading.
        watcher = watch(source.path, () => {
          clearTimeout(timer);
          timer = setTimeout(() => void enqueue(() => readSnapshotFile(source.path)), 100);
        });
      }
    } else {
      // Serve the last good snapshot first, so an API outage at boot changes nothing.
      const state = stateFile!;
      const stored = await state.read().catch((err: unknown) => {
        log.error({ err, path: state.path }, 'edge state file unreadable');
        return undefined;
      });
      if (stored !== undefined) await enqueue(() => offer(stored, state.path, false));
      feed = followApiFeed({
        url: source.url,
        token: source.token,
        fetch: source.fetch,
        log: log.child({ component: 'edge-feed' }),
        signal: abort.signal,
        retryNow,
        onSnapshot: (snapshot) => enqueue(() => offer(snapshot, 'api', true)),
        onStatus: (problem) => {
          if (problem === control.feedError) return;
          control.feedError = problem;
          reporter?.trigger('change');
        },
      });
    }
  } catch (err) {
    abort.abort();
    watcher?.close();
    await reporter?.close();
    await pool.stop();
    throw err;
  }

  const admin = await startAdminServer({
    ...options.admin,
    log,
    collect: async () => ({
      control,
      reports: await pool.reports(),
      workers: pool.size,
      restarts: pool.restarts,
      edge: edgeId === null ? null : { id: edgeId, name: options.name },
      report: reporter?.outcome() ?? null,
    }),
  }).catch(async (err: unknown) => {
    abort.abort();
    watcher?.close();
    await reporter?.close();
    await pool.stop();
    throw err;
  });

  let stopping: Promise<void> | undefined;
  return {
    adminUrl: admin.url,
    io: io.mode,
    version: control.version,
    id: edgeId,
    reload: () => (source.kind === 'file' ? enqueue(() => readSnapshotFile(source.path)) : Promise.resolve()),
    reconnect: () => void retryNow.dispatchEvent(new Event('retry')),
    async roll() {
      const result = await pool.roll();
      if (result.ok) log.info({ replaced: result.replaced }, 'edge workers rolled');
      else log.error({ error: result.error, replaced: result.replaced }, 'edge workers not rolled');
      reporter?.trigger('change');
      return result;
    },
    stop() {
      stopping ??= (async () => {
        abort.abort();
        watcher?.close();
        await feed;
        await chain;
        await reporter?.close();
        await pool.stop();
        await admin.close();
      })();
      return stopping;
    },
  };
}

/**
 * The state file in the data folder. Following the API, it is what serves while the API is down,
 * so a folder that cannot be made is fatal; from a snapshot file it is only a copy, so there the
 * edge runs on without it (e.g. under `node --permission` with no --allow-fs-write).
 */
async function openStateFile(dataDir: string, source: EdgeSource, log: Logger): Promise<EdgeStateFile | null> {
  try {
    await mkdir(dataDir, { recursive: true });
  } catch (err) {
    const message = `cannot create the data folder ${resolve(dataDir)}: ${(err as Error).message}`;
    if (source.kind === 'api') throw new Error(message, { cause: err });
    log.warn({ dataDir: resolve(dataDir), err: (err as Error).message }, 'edge state file disabled');
    return null;
  }
  return new EdgeStateFile(join(resolve(dataDir), 'edge-state.json'));
}
