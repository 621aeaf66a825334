// The seam between the scheduler and a container engine. Only api/runtime/ imports dockerode;
// everything else speaks these types.

import type { Duplex } from 'node:stream';

/** Labels Pier puts on every container it creates; listing by them is how actual state is read. */
export const LABELS = {
  managed: 'dev.pier.managed',
  /** The installation (database) that owns the container; other installations leave it alone. */
  installation: 'dev.pier.installation',
  app: 'dev.pier.app',
  /** The environment of the app (api/environment-service.ts): the reaper sweeps leftovers by it. */
  environment: 'dev.pier.environment',
  release: 'dev.pier.release',
  process: 'dev.pier.process',
  instance: 'dev.pier.instance',
  /** On an image built by Pier: the sha256 of the build context it was built from. */
  buildContext: 'dev.pier.build.context',
  /** On a Docker volume: the Pier volume (`vol_…`) it binds. */
  volume: 'dev.pier.volume',
} as const;

/** A Docker volume that binds a host directory Pier manages (a volume driver's path). */
export interface VolumeSpec {
  /** The Docker volume's name, e.g. `pier-vol_abc`. */
  name: string;
  /** The host directory it binds. */
  device: string;
  labels: Record<string, string>;
}

export interface MountSpec {
  /** A Docker volume made by ensureVolume. */
  volume: string;
  /** Where it appears in the container. */
  target: string;
  /**
   * Never copy the image's files at `target` into the volume. Docker does that at create for an
   * empty volume, mounting it then: a container made before its volume's data is in place (a
   * volume move's target, api/scheduler/prepared-start.ts) must not mount it until it starts.
   */
  noCopy?: boolean | undefined;
}

export interface ResolvedImage {
  /** The reference as the user wrote it, e.g. `local/echo:1`. */
  reference: string;
  /** Content-addressed image id, `sha256:…`; running by id pins the exact bytes. */
  id: string;
  /** `repo@sha256:…` when the image came from (or was pushed to) a registry, else null. */
  repoDigest: string | null;
  /** The image's labels, when it has any. */
  labels?: Record<string, string>;
  /** The engine version that built the image, as the image records it (absent for most pulled images). */
  builtBy?: string;
}

export type PullPolicy = 'missing' | 'always' | 'never';

/** A network of the engine that Pier's containers join; the edge and the checks reach them there. */
export interface NetworkSpec {
  name: string;
  /** IPv4 subnet in CIDR form, e.g. 198.19.0.0/16; used when the network is created. */
  subnet: string;
  labels: Record<string, string>;
  /** An IPv6 subnet (CIDR) as well: the network is made dual-stack (a private network, private-networks.ts). */
  ipv6Subnet?: string | undefined;
  /** Driver options given at creation, e.g. `com.docker.network.bridge.enable_icc`. */
  options?: Record<string, string> | undefined;
}

/** A container's place on one network, with the names the engine's DNS answers for it there. */
export interface NetworkEndpoint {
  ipv4: string | null;
  ipv6: string | null;
  aliases: string[];
}

/** How a container joins a network: the names it answers to there and, to keep them, its addresses. */
export interface JoinOptions {
  aliases?: string[] | undefined;
  ipv4?: string | null | undefined;
  ipv6?: string | null | undefined;
}

export interface NetworkInfo {
  id: string;
  name: string;
  /** The subnet the engine gave it (an existing network keeps its own). */
  subnet: string | null;
  labels: Record<string, string>;
  /** True when this call created it. */
  created: boolean;
  /** The IPv6 subnet, when the network is dual-stack. */
  ipv6Subnet?: string | null | undefined;
}

export interface ContainerSpec {
  name: string;
  /** What to run: an image id (`sha256:…`) or a reference. */
  image: string;
  cmd?: string[] | undefined;
  env?: Record<string, string> | undefined;
  labels: Record<string, string>;
  /**
   * The network the container joins (its only one). Nothing is published on the host: whoever
   * needs a port reaches the container's address on this network.
   */
  network?: string | undefined;
  /** Networks joined as well, after the container is made and before it starts (its private network). */
  alsoJoin?: string[] | undefined;
  memoryBytes?: number | undefined;
  /** Volumes mounted into the container. */
  mounts?: MountSpec[] | undefined;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: ContainerState;
  exitCode: number | null;
  oomKilled: boolean;
  /** Docker's own error text when a start failed (bad command, missing binary). */
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Network name → the container's IPv4 address on it, while it runs (the engine frees it at exit). */
  networks: Record<string, string>;
  /** Network name → the container's addresses and aliases on it, while it runs (set by both runtimes). */
  endpoints?: Record<string, NetworkEndpoint> | undefined;
}

export type RuntimeEventType = 'create' | 'start' | 'die' | 'oom' | 'kill' | 'stop' | 'destroy';

export interface RuntimeEvent {
  type: RuntimeEventType;
  containerId: string;
  labels: Record<string, string>;
  /** Set on `die`. */
  exitCode: number | null;
  /** Set on `kill`: the signal name or number. */
  signal: string | null;
  time: Date;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  time: Date;
  line: string;
}

export interface LogStreamOptions {
  /** Only lines written at or after this time. */
  since?: Date | undefined;
  /** Only lines written at or before this time (ignored when following). */
  until?: Date | undefined;
  /** Only the last N lines (before `since`/`until` apply on the engine's side); all when unset. */
  tail?: number | undefined;
  /** Keep the stream open and yield new lines until the signal aborts or the container is gone. */
  follow: boolean;
  signal: AbortSignal;
}

export interface ExecOptions {
  signal?: AbortSignal | undefined;
  /** Give up after this long (E_EXEC_TIMEOUT); the process may go on in the container. */
  timeoutMs?: number | undefined;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** True when stdout or stderr went past EXEC_OUTPUT_LIMIT and the rest was dropped. */
  truncated: boolean;
}

/** Bytes kept of each of stdout and stderr of a one-shot exec. */
export const EXEC_OUTPUT_LIMIT = 1024 * 1024;

export interface ExecSession {
  /** Raw terminal bytes both ways; with a TTY, stdout and stderr are one stream. */
  stream: Duplex;
  resize(cols: number, rows: number): Promise<void>;
  /** The process's exit code, once the stream has ended. */
  wait(): Promise<number>;
  /** Hangs up: the engine closes the terminal, which ends the process. */
  close(): void;
}

export interface ConnectOptions {
  /** Give up after this long: the error's code is ETIMEDOUT. */
  timeoutMs: number;
  /** Keep writing after the container's FIN (a tunnel carries each direction's end on its own). */
  allowHalfOpen?: boolean;
}

export interface Runtime {
  /** Answers when the engine is reachable; throws a PierError (E_RUNTIME_UNAVAILABLE) otherwise. */
  ping(): Promise<void>;
  /**
   * The network by name, created (a bridge on `subnet`, with `labels`) when missing. One that
   * exists is reused when it carries `dev.pier.managed=true`; any other is E_NETWORK_CONFLICT.
   */
  ensureNetwork(spec: NetworkSpec): Promise<NetworkInfo>;
  /**
   * Joins a running container to a network as well (one started before Pier had its network).
   * Already joined is fine; a missing network is E_NETWORK_NOT_FOUND, a missing container
   * E_CONTAINER_NOT_FOUND.
   */
  connectNetwork(id: string, network: string, options?: JoinOptions): Promise<void>;
  /** Takes a container off a network (its aliases there go with it). Not on it, or gone, is fine. */
  disconnectNetwork(id: string, network: string): Promise<void>;
  /**
   * Removes a network by name: true when it is gone (or never was), false while a container is
   * still on it (nothing changed; try again once it has left).
   */
  removeNetwork(name: string): Promise<boolean>;
  /** The engine's networks carrying all the given labels. */
  listNetworks(labels: Record<string, string>): Promise<NetworkInfo[]>;
  /**
   * A TCP connection from here to a container's address on one of the engine's networks: what a
   * health check and the edge do. Fails with the socket's error code (ECONNREFUSED when nothing
   * listens on the port, ETIMEDOUT, EHOSTUNREACH) on `err.code`.
   */
  connect(address: string, port: number, options: ConnectOptions): Promise<Duplex>;
  /** Finds the image locally or pulls it (per policy) and returns its id and digest. */
  resolveImage(reference: string, pull: PullPolicy): Promise<ResolvedImage>;
  /** Creates and starts a container; returns its id. A network that does not exist is E_NETWORK_NOT_FOUND. */
  run(spec: ContainerSpec): Promise<string>;
  /**
   * Creates a container (on its networks) without starting it; returns its id. Nothing starts it
   * but `start`: it has no restart policy. Errors as `run`'s create.
   */
  create(spec: ContainerSpec): Promise<string>;
  /**
   * Starts a created container (by id or name); returns once its process runs. Failures are
   * E_CONTAINER_START (the container is left as the engine has it), E_CONTAINER_NOT_FOUND, or
   * E_RUNTIME_UNAVAILABLE.
   */
  start(id: string): Promise<void>;
  /** Stops a container (SIGTERM, then SIGKILL after the timeout). Already stopped or gone is fine. */
  stop(id: string, timeoutSeconds: number): Promise<void>;
  /** Removes a container, stopping it first. Already gone is fine. */
  remove(id: string): Promise<void>;
  /** One container's state, or null when it does not exist. */
  inspect(id: string): Promise<ContainerInfo | null>;
  /** Every container (running or not) that carries all the given labels. */
  list(labels: Record<string, string>): Promise<ContainerInfo[]>;
  /** The last lines a container wrote, oldest first. */
  logs(id: string, tail: number): Promise<LogLine[]>;
  /** A container's lines as they are read (follow) or up to now, in the order the engine sends them. */
  streamLogs(id: string, options: LogStreamOptions): AsyncIterable<LogLine>;
  /** Runs a command in a running container to completion: E_CONTAINER_NOT_RUNNING (409) otherwise. */
  exec(id: string, cmd: string[], options?: ExecOptions): Promise<ExecResult>;
  /** Starts a command under a TTY in a running container, attached both ways. */
  execInteractive(id: string, cmd: string[], options: { tty: true; cols: number; rows: number }): Promise<ExecSession>;
  /**
   * A local Docker volume bound to a host directory, labelled as Pier's; an existing one with the
   * same name is reused when it binds the same directory and is replaced when it binds another.
   */
  ensureVolume(spec: VolumeSpec): Promise<void>;
  /**
   * Removes a Docker volume (not the data it binds), with the stopped containers that refer to it.
   * Gone already is fine; in use by a running container is E_VOLUME_ATTACHED.
   */
  removeVolume(name: string): Promise<void>;
  /** Freezes a running container's processes (a consistent snapshot); E_CONTAINER_NOT_RUNNING otherwise. */
  pause(id: string): Promise<void>;
  /** Thaws a paused container. Not paused is fine. */
  unpause(id: string): Promise<void>;
  /** Container events for Pier's containers, until the signal aborts. */
  events(signal: AbortSignal): AsyncIterable<RuntimeEvent>;
}
