// A Runtime that keeps its containers in memory and behaves like the Docker one: names are unique,
// containers start after a latency, run busybox-like commands (memory-program.ts), exit with codes,
// crash, get OOM-killed under a memory limit, write logs, answer exec, join networks with an
// address each, answer connections where their programs listen (memory-network.ts; no socket is
// opened) and emit events. For fast tests of the scheduler and for benchmarks;
// `pier server` runs on Docker. test/api/runtime/runtime-contract.ts holds both to one contract.
import { randomBytes } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { PierError } from '../pier-error.js';
import { connectError, createMemoryNetworks, virtualConnection } from './memory-network.js';
import { runProgram, startError, type ListenKind } from './memory-program.js';
import type { Duplex } from 'node:stream';
import type {
  ConnectOptions,
  ContainerInfo,
  ContainerSpec,
  ContainerState,
  ExecOptions,
  ExecResult,
  ExecSession,
  JoinOptions,
  LogLine,
  NetworkInfo,
  LogStreamOptions,
  PullPolicy,
  ResolvedImage,
  Runtime,
  RuntimeEvent,
  RuntimeEventType,
} from './runtime.js';

export interface MemoryRuntimeOptions {
  /** From create to running (ms), as an engine takes to start a process; default 0. */
  startLatencyMs?: number;
  /** How long a stop takes (ms); default 0. */
  stopLatencyMs?: number;
  /** Images present at start, by reference; more with addImage(). */
  images?: string[];
  /** Called between create and start: a test can hold a start here. */
  beforeStart?: (spec: ContainerSpec) => Promise<void>;
}

export interface MemoryRuntime extends Runtime {
  addImage(reference: string): ResolvedImage;
  /** The process of a running container dies on its own (crash, or OOM with `oom`). */
  crash(id: string, options?: { exitCode?: number; oom?: boolean }): void;
  /** Engine down (every call fails E_RUNTIME_UNAVAILABLE, event streams end) or back up. */
  setAvailable(up: boolean): void;
  /** Successful run() calls per container name, to prove nothing was started twice. */
  runs(): Map<string, number>;
  /** A network made by someone else (no Pier label), as a test of E_NETWORK_CONFLICT needs. */
  addForeignNetwork(name: string, subnet: string): void;
  /** The host directory a Docker volume made by ensureVolume binds, or undefined. */
  volumeDevice(name: string): string | undefined;
  /** The spec a container was created with (its mounts, env, labels), or undefined. */
  specOf(id: string): ContainerSpec | undefined;
}

interface Container {
  info: ContainerInfo;
  spec: ContainerSpec;
  logs: LogLine[];
  files: Map<string, string>;
  /** Aborts the running process (stop, kill, remove). */
  process: AbortController | null;
  /** Resolves when the process has ended (state no longer running). */
  ended: Promise<void> | null;
  /** Ports its program listens on now. */
  listening: Map<number, ListenKind>;
  /** Open connections to it, reset when it stops. */
  connections: Set<Duplex>;
}

const DOCKER_SOCKET_WORDS = 'the in-memory engine';

export function createMemoryRuntime(options: MemoryRuntimeOptions = {}): MemoryRuntime {
  const containers = new Map<string, Container>();
  /** Docker volume name → the host directory it binds. */
  const volumes = new Map<string, string>();
  const byName = new Map<string, Container>();
  const images = new Map<string, ResolvedImage>();
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const runCount = new Map<string, number>();
  let available = true;
  const networks = createMemoryNetworks();

  const unavailable = () =>
    new PierError('E_RUNTIME_UNAVAILABLE', `Docker is not reachable at ${DOCKER_SOCKET_WORDS}`, {
      status: 503,
      hint: 'start the engine (`sudo systemctl start docker`, or `sudo dockerd &`) or point Pier at the right socket',
    });
  const up = () => {
    if (!available) throw unavailable();
  };
  const find = (idOrName: string): Container | undefined => containers.get(idOrName) ?? byName.get(idOrName);
  const notFound = (id: string) => new PierError('E_CONTAINER_NOT_FOUND', `container ${id} does not exist`, { status: 404 });

  function emit(c: Container, type: RuntimeEventType, extra: { exitCode?: number; signal?: string } = {}): void {
    const event: RuntimeEvent = { type, containerId: c.info.id, labels: { ...c.info.labels }, exitCode: extra.exitCode ?? null, signal: extra.signal ?? null, time: new Date() };
    emitter.emit('event', event);
  }

  function addImage(reference: string): ResolvedImage {
    const existing = images.get(reference);
    if (existing) return existing;
    const image = { reference, id: `sha256:${randomBytes(32).toString('hex')}`, repoDigest: null };
    images.set(reference, image);
    images.set(image.id, image);
    return image;
  }
  for (const ref of options.images ?? []) addImage(ref);

  function print(c: Container, stream: 'stdout' | 'stderr', line: string): void {
    const entry = { stream, time: new Date(), line };
    c.logs.push(entry);
    if (c.logs.length > 10_000) c.logs.splice(0, c.logs.length - 10_000);
    emitter.emit(`log:${c.info.id}`, entry);
  }

  /** Ends the process: records how, once, and tells the event stream. */
  function finish(c: Container, exitCode: number, oom = false): void {
    if (c.info.state !== 'running') return;
    c.process?.abort(new Error('process ended'));
    c.process = null;
    disconnect(c);
    c.info = { ...c.info, state: 'exited', exitCode, oomKilled: oom, finishedAt: new Date(), networks: {} };
    if (oom) emit(c, 'oom');
    emit(c, 'die', { exitCode });
    emitter.emit(`end:${c.info.id}`);
  }

  /** A running container's place on a network: an address (the one asked for, when free) and its aliases. */
  function attach(c: Container, network: string, join: JoinOptions): void {
    const ipv4 = networks.assign(network, join.ipv4);
    const endpoint = { ipv4, ipv6: networks.ipv6Of(network, ipv4), aliases: [...(join.aliases ?? [])] };
    c.info = { ...c.info, networks: { ...c.info.networks, [network]: ipv4 }, endpoints: { ...c.info.endpoints, [network]: endpoint } };
  }

  /** The engine frees a stopped container's addresses, and its connections end with it. */
  function disconnect(c: Container): void {
    for (const [name, address] of Object.entries(c.info.networks)) networks.release(name, address);
    c.info.endpoints = {};
    for (const conn of c.connections) conn.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    c.connections.clear();
    c.listening.clear();
  }

  function launch(c: Container): void {
    const controller = new AbortController();
    c.process = controller;
    const listen = (port: number, kind: ListenKind) => {
      c.listening.set(port, kind);
      return () => void (c.listening.get(port) === kind && c.listening.delete(port));
    };
    const io = { print: (s: 'stdout' | 'stderr', l: string) => print(c, s, l), signal: controller.signal, env: c.spec.env ?? {}, files: c.files, memoryBytes: c.spec.memoryBytes, listen };
    c.ended = runProgram(c.spec.cmd ?? ['sh'], io).then(
      (outcome) => finish(c, outcome.exitCode, outcome.oom ?? false),
      () => undefined, // killed: whoever killed it recorded the outcome
    );
  }

  function create(spec: ContainerSpec): Container {
    up();
    if (byName.has(spec.name)) {
      throw new PierError('E_CONTAINER_CONFLICT', `a container named ${spec.name} already exists`, {
        status: 409,
        hint: `it is left from an earlier attempt: remove it (docker rm -f ${spec.name}) and try again`,
      });
    }
    if (!images.has(spec.image)) {
      throw new PierError('E_IMAGE_NOT_FOUND', `image ${spec.image} not found: it is not on the engine; resolve it first`, { status: 422 });
    }
    for (const network of [spec.network, ...(spec.alsoJoin ?? [])]) {
      if (network !== undefined && !networks.exists(network)) throw new PierError('E_NETWORK_NOT_FOUND', `the Docker network "${network}" does not exist`, { status: 503 });
    }
    const id = randomBytes(32).toString('hex');
    const c: Container = {
      spec,
      logs: [],
      files: new Map(),
      process: null,
      ended: null,
      listening: new Map(),
      connections: new Set(),
      info: { id, name: spec.name, image: spec.image, labels: { ...spec.labels }, state: 'created', exitCode: null, oomKilled: false, error: null, startedAt: null, finishedAt: null, networks: {} },
    };
    containers.set(id, c);
    byName.set(spec.name, c);
    emit(c, 'create');
    return c;
  }

  /** Starts a created container: `run` removes one that failed to start, `start` leaves it created. */
  async function startCreated(c: Container, keepOnFailure: boolean): Promise<void> {
    const { spec } = c;
    const id = c.info.id;
    await options.beforeStart?.(spec);
    if (options.startLatencyMs) await new Promise((r) => setTimeout(r, options.startLatencyMs));
    if (!available) throw unavailable();
    if (containers.get(id) !== c) throw notFound(id); // removed while starting
    const error = startError(spec.cmd ?? ['sh']);
    if (error) {
      if (!keepOnFailure) {
        containers.delete(id);
        byName.delete(spec.name);
        emit(c, 'destroy');
      }
      throw new PierError('E_CONTAINER_START', `container ${spec.name} failed to start: ${error}`, {
        status: 422,
        hint: 'check the command and the image: the executable must exist in the image',
      });
    }
    c.info = { ...c.info, state: 'running', startedAt: new Date(), networks: {}, endpoints: {} };
    for (const network of [spec.network, ...(spec.alsoJoin ?? [])]) if (network !== undefined) attach(c, network, {});
    runCount.set(spec.name, (runCount.get(spec.name) ?? 0) + 1);
    emit(c, 'start');
    launch(c);
  }

  async function stop(id: string, _timeoutSeconds: number): Promise<void> {
    up();
    const c = find(id);
    if (!c || c.info.state !== 'running') return;
    emit(c, 'kill', { signal: '15' });
    if (options.stopLatencyMs) await new Promise((r) => setTimeout(r, options.stopLatencyMs));
    // Busybox as PID 1 ignores SIGTERM: the engine kills it when the timeout runs out.
    finish(c, 137);
    emit(c, 'stop');
  }

  async function* events(signal: AbortSignal): AsyncGenerator<RuntimeEvent> {
    up();
    const down = new AbortController();
    const onDown = () => down.abort();
    emitter.once('down', onDown);
    try {
      for await (const [event] of on(emitter, 'event', { signal: AbortSignal.any([signal, down.signal]) })) yield event as RuntimeEvent;
    } catch (err) {
      if (signal.aborted) return;
      if (down.signal.aborted) throw unavailable();
      throw err;
    } finally {
      emitter.off('down', onDown);
    }
  }

  return {
    addImage,
    crash(id, opts = {}) {
      const c = find(id);
      if (c) finish(c, opts.oom ? 137 : (opts.exitCode ?? 139), opts.oom ?? false);
    },
    setAvailable(isUp) {
      available = isUp;
      if (!isUp) emitter.emit('down');
    },
    runs: () => new Map(runCount),
    addForeignNetwork: (name, subnet) => networks.addForeign(name, subnet),
    volumeDevice: (name) => volumes.get(name),
    specOf: (id) => find(id)?.spec,

    async ping() {
      up();
    },

    // Volumes are bookkeeping here: the in-memory programs have no file system to mount into.
    async ensureVolume(spec) {
      up();
      volumes.set(spec.name, spec.device);
    },

    async removeVolume(name) {
      up();
      volumes.delete(name);
    },

    async pause(id) {
      up();
      const c = find(id);
      if (!c || c.info.state !== 'running') throw new PierError('E_CONTAINER_NOT_RUNNING', `container ${id} is not running`, { status: 409 });
      c.info = { ...c.info, state: 'paused' };
    },

    async unpause(id) {
      up();
      const c = find(id);
      if (c && c.info.state === 'paused') c.info = { ...c.info, state: 'running' };
    },

    async ensureNetwork(spec) {
      up();
      return networks.ensure(spec);
    },

    async connectNetwork(id: string, network: string, join: JoinOptions = {}): Promise<void> {
      up();
      const c = find(id);
      if (!c) throw notFound(id);
      if (!networks.exists(network)) throw new PierError('E_NETWORK_NOT_FOUND', `the Docker network "${network}" does not exist`, { status: 503 });
      if (c.info.state !== 'running' || c.info.networks[network]) return;
      attach(c, network, join);
    },

    async disconnectNetwork(id: string, network: string): Promise<void> {
      up();
      const c = find(id);
      const address = c?.info.networks[network];
      if (!c || !address) return;
      networks.release(network, address);
      const { [network]: _gone, ...rest } = c.info.networks;
      const { [network]: _alsoGone, ...endpoints } = c.info.endpoints ?? {};
      c.info = { ...c.info, networks: rest, endpoints };
    },

    async removeNetwork(name: string): Promise<boolean> {
      up();
      for (const c of containers.values()) if (c.info.networks[name]) return false;
      return networks.remove(name);
    },

    async listNetworks(labels: Record<string, string>): Promise<NetworkInfo[]> {
      up();
      return networks.list(labels);
    },

    async connect(address: string, port: number, _options: ConnectOptions): Promise<Duplex> {
      up();
      let target: Container | undefined;
      for (const c of containers.values()) if (c.info.state === 'running' && Object.values(c.info.networks).includes(address)) target = c;
      // No such host answers ARP on a bridge: Docker's host sees EHOSTUNREACH.
      if (!target) throw connectError('EHOSTUNREACH', address, port);
      const kind = target.listening.get(port);
      if (!kind) throw connectError('ECONNREFUSED', address, port);
      const conn = virtualConnection(kind);
      const owner = target;
      owner.connections.add(conn);
      conn.once('close', () => owner.connections.delete(conn));
      return conn;
    },

    async resolveImage(reference: string, pull: PullPolicy): Promise<ResolvedImage> {
      up();
      const image = images.get(reference);
      if (image && pull !== 'always') return { ...image, reference };
      // No registry is reachable from the in-memory engine: a pull always fails.
      const why = pull === 'never' ? 'it is not on the engine and the pull policy is "never"' : `pull failed: pull access denied for ${reference}`;
      throw new PierError('E_IMAGE_NOT_FOUND', `image ${reference} not found: ${why}`, {
        status: 422,
        hint: `build it on the engine (docker build -t ${reference} .) or push it to a registry the engine can reach (docker push ${reference})`,
      });
    },

    async run(spec: ContainerSpec): Promise<string> {
      const c = create(spec);
      await startCreated(c, false);
      return c.info.id;
    },

    async create(spec: ContainerSpec): Promise<string> {
      return create(spec).info.id;
    },

    async start(id: string): Promise<void> {
      up();
      const c = find(id);
      if (!c) throw new PierError('E_CONTAINER_NOT_FOUND', `container ${id} does not exist`, { status: 404 });
      if (c.info.state === 'running') return;
      await startCreated(c, true);
    },

    stop,

    async remove(id: string): Promise<void> {
      up();
      const c = find(id);
      if (!c) return;
      if (c.info.state === 'running') {
        emit(c, 'kill', { signal: '9' });
        finish(c, 137);
      }
      containers.delete(c.info.id);
      byName.delete(c.info.name);
      emit(c, 'destroy');
      emitter.emit(`end:${c.info.id}`);
    },

    async inspect(id: string): Promise<ContainerInfo | null> {
      up();
      const c = find(id);
      return c ? copy(c.info) : null;
    },

    async list(labels: Record<string, string>): Promise<ContainerInfo[]> {
      up();
      const wanted = Object.entries(labels);
      const out: ContainerInfo[] = [];
      for (const c of containers.values()) if (wanted.every(([k, v]) => c.info.labels[k] === v)) out.push(copy(c.info));
      return out;
    },

    async logs(id: string, tail: number): Promise<LogLine[]> {
      up();
      const c = find(id);
      if (!c) throw notFound(id);
      const n = Math.max(0, Math.floor(tail));
      return n === 0 ? [] : c.logs.slice(-n).map((l) => ({ ...l }));
    },

    async *streamLogs(id: string, opts: LogStreamOptions): AsyncGenerator<LogLine> {
      up();
      const c = find(id);
      if (!c) throw notFound(id);
      if (opts.signal.aborted) return;
      const keep = (l: LogLine) => (!opts.since || l.time >= opts.since) && (opts.follow || !opts.until || l.time <= opts.until);
      let past = c.logs;
      if (opts.tail !== undefined) past = opts.tail <= 0 ? [] : past.slice(-Math.floor(opts.tail));
      const lines = past.filter(keep).map((l) => ({ ...l }));
      if (!opts.follow) return yield* lines;
      // Lines written from here on are queued, so none is lost between the past and the follow.
      const queue: LogLine[] = [...lines];
      let wake: (() => void) | null = null;
      let over = c.info.state !== 'running';
      const onLine = (l: LogLine) => {
        queue.push({ ...l });
        wake?.();
      };
      const onEnd = () => {
        over = true;
        wake?.();
      };
      const onAbort = () => wake?.();
      emitter.on(`log:${c.info.id}`, onLine);
      emitter.on(`end:${c.info.id}`, onEnd);
      opts.signal.addEventListener('abort', onAbort);
      try {
        while (!opts.signal.aborted) {
          while (queue.length) yield queue.shift() as LogLine;
          if (over) return;
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
      } finally {
        emitter.off(`log:${c.info.id}`, onLine);
        emitter.off(`end:${c.info.id}`, onEnd);
        opts.signal.removeEventListener('abort', onAbort);
      }
    },

    async exec(id: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
      up();
      const c = find(id);
      if (!c) throw notFound(id);
      if (c.info.state !== 'running') throw new PierError('E_CONTAINER_NOT_RUNNING', `container ${id} is not running: it is ${c.info.state}`, { status: 409 });
      const out = { stdout: '', stderr: '' };
      const controller = new AbortController();
      const timeoutMs = opts.timeoutMs ?? 60_000;
      const timer = setTimeout(() => controller.abort(new Error('timeout')), timeoutMs);
      const signal = AbortSignal.any([controller.signal, ...(opts.signal ? [opts.signal] : []), ...(c.process ? [c.process.signal] : [])]);
      try {
        const io = { print: (s: 'stdout' | 'stderr', l: string) => void (out[s] += `${l}\n`), signal, env: c.spec.env ?? {}, files: c.files, memoryBytes: undefined };
        const outcome = await runProgram(cmd, io);
        return { exitCode: outcome.exitCode, stdout: out.stdout, stderr: out.stderr, truncated: false };
      } catch {
        if (opts.signal?.aborted) throw new PierError('E_EXEC_ABORTED', 'the exec was cancelled', { status: 499 });
        if (controller.signal.aborted) {
          throw new PierError('E_EXEC_TIMEOUT', `the command did not finish within ${timeoutMs} ms`, {
            status: 504,
            hint: 'it may still be running in the container; raise timeoutMs, or use an interactive session (pier exec -it)',
          });
        }
        // The container stopped under the command: Docker ends the exec with the process.
        return { exitCode: 137, stdout: out.stdout, stderr: out.stderr, truncated: false };
      } finally {
        clearTimeout(timer);
      }
    },

    async execInteractive(): Promise<ExecSession> {
      throw new PierError('E_NOT_SUPPORTED', 'the in-memory runtime has no terminals', { status: 501, hint: 'use one-shot exec, or the Docker runtime' });
    },

    events,
  };
}

function copy(info: ContainerInfo): ContainerInfo {
  const endpoints = Object.fromEntries(Object.entries(info.endpoints ?? {}).map(([n, e]) => [n, { ...e, aliases: [...e.aliases] }]));
  return { ...info, labels: { ...info.labels }, networks: { ...info.networks }, endpoints, state: info.state as ContainerState };
}
