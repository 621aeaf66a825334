// Pier's own image registry: Debian's `docker-registry` (distribution 2.8, a real OCI registry)
// started on loopback with its storage under the data dir, and restarted whenever it exits
// (backoff 0.5 s doubling to 30 s) with a log line and an event. Its port is kept in the data dir:
// releases pin `127.0.0.1:PORT/app@sha256:…`, so the registry comes back where they point.
// Docker treats 127.0.0.0/8 registries as insecure-allowed, so the engine pushes and pulls over
// plain HTTP without daemon configuration. On a swarm it may listen on an address the nodes reach
// instead (--registry-listen): images are then named by that address, and every engine that pushes
// or pulls must list it in `insecure-registries` (or the registry must be put behind TLS).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { PierError } from '../pier-error.js';
import type { Registry, RegistryEvent } from './registry.js';
import { LOOPBACK_REGISTRY, registryHostPort, type RegistryListen } from './registry-listen.js';

export interface LocalRegistryOptions {
  /** The registry program (default /usr/bin/docker-registry). */
  binary?: string;
  /** Its folder: config, port and storage live under it. */
  dir: string;
  log: Logger;
  /** Told when it exits unexpectedly, and when it serves again. */
  onEvent?: (event: RegistryEvent) => void;
  /** How long one start may take to answer /v2/ (default 15 s). */
  startTimeoutMs?: number;
  /**
   * Where it listens, which is also the host images are named by (default 127.0.0.1, a port
   * picked once and kept). On a swarm: an address the nodes reach (registry-listen.ts).
   */
  listen?: RegistryListen | undefined;
}

export interface LocalRegistry extends Registry {
  readonly kind: 'local';
  /** The first start: resolves once it serves, or with the reason it does not yet (it keeps retrying). */
  start(): Promise<{ ok: true } | { ok: false; problem: string }>;
  /** Its storage folder (the registry's rootdirectory). */
  readonly storageDir: string;
  /**
   * Reclaims the blobs no manifest references (`docker-registry garbage-collect`): the registry
   * is stopped meanwhile (pushes and pulls get 503 / connection refused) and started again after.
   */
  collectBlobs(timeoutMs?: number): Promise<void>;
  /** The running process's pid, if any (for tests that end it). */
  readonly pid: number | undefined;
}

const MAX_BACKOFF_MS = 30_000;
const SETPRIV = '/usr/bin/setpriv';

export function createLocalRegistry(options: LocalRegistryOptions): LocalRegistry {
  const binary = options.binary ?? '/usr/bin/docker-registry';
  const log = options.log.child({ component: 'registry' });
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  const listen = options.listen ?? LOOPBACK_REGISTRY;
  let port = listen.port;
  const hostPort = () => registryHostPort(listen, port);
  let child: ChildProcess | undefined;
  let serving = false;
  let closed = false;
  /** Stopped on purpose for a blob collection: its exit is not a crash. */
  let paused = false;
  let lastProblem = 'it has not started yet';
  let retry: NodeJS.Timeout | undefined;
  let backoff = 500;

  /** One attempt: spawn, wait for /v2/; on failure the reason, the process ended. */
  async function attempt(): Promise<string | null> {
    try {
      if (!existsSync(binary)) return `${binary} is not installed`;
      port = await chosenPort(options.dir, port, listen.host);
      await mkdir(join(options.dir, 'data'), { recursive: true });
      const config = join(options.dir, 'config.yml');
      await writeFile(config, registryConfig(join(options.dir, 'data'), hostPort()));
      // With setpriv (util-linux), the registry gets SIGTERM when this process dies, however it
      // dies: an API process that crashed must not leave a registry holding the port.
      const proc = existsSync(SETPRIV)
        ? spawn(SETPRIV, ['--pdeathsig', 'TERM', '--', binary, 'serve', config], { stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn(binary, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
      child = proc;
      const tail: string[] = [];
      proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) if (line.trim()) tail.push(line.trim());
        tail.splice(0, Math.max(0, tail.length - 20));
      });
      const spawned = new Promise<string>((resolve) => {
        proc.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? `${binary} is not installed` : `cannot start ${binary}: ${err.message}`));
        proc.once('exit', (code, signal) => resolve(`${binary} exited (${signal ?? `code ${code}`}) before it served${tail.length ? `: ${tail.slice(-3).join(' | ')}` : ''}`));
      });
      const stopPolling = new AbortController();
      const outcome = await Promise.race([answering(hostPort(), startTimeoutMs, stopPolling.signal).then(() => null), spawned]).finally(() => stopPolling.abort());
      if (outcome !== null) {
        // Another process took the port: the next attempt picks a free one (unless it was given).
        if (/address already in use/.test(outcome)) port = listen.port;
        return outcome;
      }
      if (closed) {
        proc.kill('SIGTERM');
        return 'closed';
      }
      proc.once('exit', (code, signal) => {
        if (child === proc) child = undefined;
        serving = false;
        if (closed || paused) return;
        lastProblem = `${binary} exited (${signal ?? `code ${code}`})${tail.length ? `: ${tail.slice(-3).join(' | ')}` : ''}`;
        log.error({ code, signal, stderr: tail.slice(-5) }, 'registry exited; restarting it');
        options.onEvent?.({ type: 'registry.exited', message: `the image registry exited (${signal ?? `code ${code}`}); restarting it`, data: { code, signal } });
        schedule();
      });
      serving = true;
      backoff = 500;
      log.info({ port, listen: hostPort(), pid: proc.pid }, 'registry serving');
      return null;
    } catch (err) {
      child?.kill('SIGKILL');
      return `cannot start the registry: ${(err as Error).message}`;
    }
  }

  function schedule(): void {
    if (closed || retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      void attempt().then((problem) => {
        if (problem === null) {
          options.onEvent?.({ type: 'registry.restarted', message: `the image registry serves again on ${hostPort()}`, data: { port } });
          return;
        }
        if (closed) return;
        lastProblem = problem;
        log.error({ problem, retryInMs: backoff }, 'registry start failed; retrying');
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        schedule();
      });
    }, backoff);
    retry.unref();
  }

  async function stopChild(): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  return {
    kind: 'local',
    get host() {
      return hostPort();
    },
    get url() {
      return `http://${hostPort()}`;
    },
    credentials: null,
    storageDir: join(options.dir, 'data'),
    async collectBlobs(timeoutMs = 10 * 60_000) {
      if (closed) throw new PierError('E_REGISTRY_UNAVAILABLE', "Pier's image registry is closed", { status: 503 });
      if (retry) {
        clearTimeout(retry);
        retry = undefined;
      }
      paused = true;
      lastProblem = 'garbage collection is running (it serves again in a moment)';
      try {
        await stopChild();
        await runCollector(binary, join(options.dir, 'config.yml'), timeoutMs);
        log.info('registry blobs collected');
      } finally {
        paused = false;
        if (!closed) {
          const problem = await attempt();
          if (problem !== null) {
            lastProblem = problem;
            log.error({ problem }, 'registry start after garbage collection failed; retrying');
            schedule();
          }
        }
      }
    },
    get pid() {
      return child?.pid;
    },
    async start() {
      const problem = await attempt();
      if (problem === null) return { ok: true };
      lastProblem = problem;
      log.error({ problem }, 'registry start failed; retrying');
      schedule();
      return { ok: false, problem };
    },
    ensureServing() {
      if (serving) return;
      throw new PierError('E_REGISTRY_UNAVAILABLE', `Pier's image registry is not serving: ${lastProblem}`, {
        status: 503,
        hint: 'Pier restarts it on its own; retry shortly. If it keeps failing, install it (apt-get install docker-registry) or use an external one (--registry URL)',
      });
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await stopChild();
    },
  };
}

/** `docker-registry garbage-collect CONFIG`, bounded in time; its last lines say why it failed. */
function runCollector(binary: string, config: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(binary, ['garbage-collect', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-2_000);
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(new PierError('E_REGISTRY_GC_FAILED', `cannot run ${binary} garbage-collect: ${err.message}`, { status: 500 }));
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const last = tail.trim().split('\n').slice(-3).join(' | ');
      reject(new PierError('E_REGISTRY_GC_FAILED', `${binary} garbage-collect failed (${signal ?? `code ${code}`})${last ? `: ${last}` : ''}`, {
        status: 500,
        hint: 'the manifests were deleted; their blobs are reclaimed on the next run (see the server log)',
      }));
    });
  });
}

/** The port kept in DIR/port, or a free one on HOST (then kept). */
async function chosenPort(dir: string, current: number, host: string): Promise<number> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'port');
  if (current === 0) {
    const kept = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    current = Number.isInteger(kept) && kept > 0 && kept < 65536 && (await isFree(kept, host)) ? kept : await freePort(host);
  }
  await writeFile(file, `${current}\n`);
  return current;
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Polls GET /v2/ until it answers 200 (bounded). */
async function answering(hostPort: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted) {
    try {
      const res = await fetch(`http://${hostPort}/v2/`, { signal: AbortSignal.timeout(1_000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`no answer on ${hostPort}/v2/ within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('stopped waiting');
}

function registryConfig(root: string, addr: string): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(root)}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${JSON.stringify(addr)}`,
    '',
  ].join('\n');
}
