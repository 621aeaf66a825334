// The seam between the scheduler and a container engine. Only api/runtime/docker-runtime.ts
// imports dockerode; everything else speaks these types.

/** Labels Pier puts on every container it creates; listing by them is how actual state is read. */
export const LABELS = {
  managed: 'dev.pier.managed',
  app: 'dev.pier.app',
  release: 'dev.pier.release',
  process: 'dev.pier.process',
  instance: 'dev.pier.instance',
} as const;

export interface ResolvedImage {
  /** The reference as the user wrote it, e.g. `local/echo:1`. */
  reference: string;
  /** Content-addressed image id, `sha256:…`; running by id pins the exact bytes. */
  id: string;
  /** `repo@sha256:…` when the image came from (or was pushed to) a registry, else null. */
  repoDigest: string | null;
}

export type PullPolicy = 'missing' | 'always' | 'never';

export interface PortSpec {
  /** Port inside the container. */
  container: number;
  /** Host address to publish on; Pier publishes on loopback only. */
  hostIp: string;
}

export interface ContainerSpec {
  name: string;
  /** What to run: an image id (`sha256:…`) or a reference. */
  image: string;
  cmd?: string[] | undefined;
  env?: Record<string, string> | undefined;
  labels: Record<string, string>;
  ports: PortSpec[];
  memoryBytes?: number | undefined;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface PublishedPort {
  container: number;
  hostIp: string;
  hostPort: number;
}

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
  ports: PublishedPort[];
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

export interface Runtime {
  /** Answers when the engine is reachable; throws a PierError (E_RUNTIME_UNAVAILABLE) otherwise. */
  ping(): Promise<void>;
  /** Finds the image locally or pulls it (per policy) and returns its id and digest. */
  resolveImage(reference: string, pull: PullPolicy): Promise<ResolvedImage>;
  /** Creates and starts a container; returns its id. */
  run(spec: ContainerSpec): Promise<string>;
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
  /** Container events for Pier's containers, until the signal aborts. */
  events(signal: AbortSignal): AsyncIterable<RuntimeEvent>;
}
