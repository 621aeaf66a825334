// Pier's services, tasks and nodes on a Docker Swarm, through the manager's Engine API
// (dockerode): create a group's service, scale it, remove it; read each task's node, state and
// host-mode published ports; list nodes and drain or activate one. Swarm places, restarts and
// moves tasks; nothing here starts a container itself.
import Docker from 'dockerode';
import { PierError } from '../pier-error.js';
import { createEngineErrors, dockerMessage, statusOf } from './docker-errors.js';
import { toDockerServiceSpec, type DockerServiceSpec, type SwarmGroupSpec } from './swarm-service-spec.js';

export interface SwarmServicesOptions {
  /** The manager's API socket (DOCKER_HOST=unix://… is read by the caller, not here). */
  socketPath: string;
}

export type TaskState =
  | 'new' | 'allocated' | 'pending' | 'assigned' | 'accepted' | 'preparing' | 'ready' | 'starting'
  | 'running' | 'complete' | 'shutdown' | 'failed' | 'rejected' | 'remove' | 'orphaned';

export interface SwarmTask {
  id: string;
  serviceId: string;
  /** The replica's place in its service (1…N); a replacement keeps its slot. */
  slot: number;
  nodeId: string | null;
  state: TaskState;
  desiredState: string;
  /** Swarm's words for a failure, e.g. "task: non-zero exit (137)". */
  error: string | null;
  containerId: string | null;
  exitCode: number | null;
  /** Container port → the port it is published on at its node's IPv4 address (see `published`). */
  ports: Record<number, number>;
  /**
   * Container port → every host port it is published on, in the engine's order: the IPv4
   * binding (0.0.0.0) first, then the IPv6 one (::). Engine 20.10 allocates a dynamic port for
   * each family separately, and they can differ (e.g. 0.0.0.0:32775 and [::]:32774): a
   * connection to the node's IPv4 address on the IPv6 binding's port is refused.
   */
  published: Record<number, number[]>;
  updatedAt: Date | null;
}

export type NodeAvailability = 'active' | 'pause' | 'drain';

export interface SwarmNodeInfo {
  id: string;
  hostname: string;
  /** Where the node is reached: its tasks' host-mode ports answer here. */
  address: string;
  /** Swarm's view: ready, down, unknown, disconnected. */
  state: string;
  availability: NodeAvailability;
  role: 'manager' | 'worker';
  labels: Record<string, string>;
  capacity: { cpus: number; memoryBytes: number };
  engineVersion: string | null;
}

export function createSwarmServices(options: SwarmServicesOptions) {
  const docker = new Docker({ socketPath: options.socketPath });
  const { engineError } = createEngineErrors(options.socketPath);

  /** Fails clearly when the engine is not a swarm manager: Pier cannot place anything there. */
  async function requireManager(): Promise<void> {
    let info: { Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean } };
    try {
      info = (await docker.info()) as typeof info;
    } catch (err) {
      throw engineError(err, 'info');
    }
    if (info.Swarm?.LocalNodeState !== 'active' || info.Swarm.ControlAvailable !== true) {
      throw new PierError('E_NOT_SWARM_MANAGER', `the engine at ${options.socketPath} is not a swarm manager (swarm state: ${info.Swarm?.LocalNodeState ?? 'unknown'})`, {
        status: 503,
        hint: 'point DOCKER_HOST at a manager of the swarm (`docker node ls` works there), or run `docker swarm init` first',
      });
    }
  }

  async function findService(name: string): Promise<Docker.Service & { info: { ID: string; Version: { Index: number }; Spec: unknown } } | null> {
    try {
      const service = docker.getService(name);
      const info = (await service.inspect()) as { ID: string; Version: { Index: number }; Spec: unknown };
      return Object.assign(service, { info });
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw engineError(err, `inspect service ${name}`);
    }
  }

  /** Creates the group's service, or sets the replicas of the one that exists (same name). */
  async function ensureService(spec: SwarmGroupSpec): Promise<{ id: string; created: boolean }> {
    const existing = await findService(spec.name);
    if (existing) {
      const wanted = toDockerServiceSpec(spec);
      // A group's volumes moved to another node while it was held at zero (pier volumes move):
      // its pin and mounts follow them, or Swarm would start it on the source again.
      if (volumeHomeDiffers(existing.info.Spec as DockerServiceSpec, wanted)) await repin(spec.name, wanted);
      else await scaleService(spec.name, spec.replicas);
      return { id: existing.info.ID, created: false };
    }
    try {
      const created = (await docker.createService(toDockerServiceSpec(spec) as unknown as Docker.CreateServiceOptions)) as { id?: string; ID?: string };
      return { id: created.id ?? created.ID ?? spec.name, created: true };
    } catch (err) {
      if (statusOf(err) === 409) return { id: (await findService(spec.name))?.info.ID ?? spec.name, created: false };
      throw engineError(err, `create service ${spec.name}`);
    }
  }

  /** Changes only the replica count; Swarm starts or stops tasks (it picks which ones stop, keeping nodes balanced). */
  async function scaleService(name: string, replicas: number): Promise<void> {
    // The update must carry the version it read: a concurrent change makes it fail, so retry once.
    for (let attempt = 0; ; attempt++) {
      const service = await findService(name);
      if (!service) throw new PierError('E_SERVICE_NOT_FOUND', `swarm service ${name} does not exist`, { status: 404 });
      const spec = service.info.Spec as { Mode?: { Replicated?: { Replicas?: number } } };
      if (spec.Mode?.Replicated?.Replicas === replicas) return;
      try {
        await service.update({ ...(spec as object), version: service.info.Version.Index, Mode: { Replicated: { Replicas: replicas } } });
        return;
      } catch (err) {
        if (attempt === 0 && /update out of sequence/i.test(dockerMessage(err))) continue;
        throw engineError(err, `scale service ${name}`);
      }
    }
  }

  /**
   * Sets a service's placement, mounts and replicas to the wanted ones, keeping the rest of its
   * spec. Swarm replaces its tasks stop-first (its default order), so a one-writer group never has
   * two writers; Pier calls it only while the group was held at zero tasks.
   */
  async function repin(name: string, wanted: DockerServiceSpec): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const service = await findService(name);
      if (!service) throw new PierError('E_SERVICE_NOT_FOUND', `swarm service ${name} does not exist`, { status: 404 });
      const spec = service.info.Spec as DockerServiceSpec;
      const { Mounts: _old, ...containerSpec } = spec.TaskTemplate.ContainerSpec;
      const next = {
        ...spec,
        TaskTemplate: {
          ...spec.TaskTemplate,
          ContainerSpec: { ...containerSpec, ...(wanted.TaskTemplate.ContainerSpec.Mounts ? { Mounts: wanted.TaskTemplate.ContainerSpec.Mounts } : {}) },
          Placement: wanted.TaskTemplate.Placement,
        },
        Mode: wanted.Mode,
      };
      try {
        await service.update({ ...(next as object), version: service.info.Version.Index });
        return;
      } catch (err) {
        if (attempt === 0 && /update out of sequence/i.test(dockerMessage(err))) continue;
        throw engineError(err, `move service ${name} to its volumes' node`);
      }
    }
  }

  async function removeService(name: string): Promise<void> {
    try {
      await docker.getService(name).remove();
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw engineError(err, `remove service ${name}`);
    }
  }

  /** Services carrying all the given labels, by name. */
  async function listServices(labels: Record<string, string>): Promise<{ id: string; name: string; labels: Record<string, string>; replicas: number }[]> {
    try {
      const services = await docker.listServices({ filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } });
      return services.map((s) => ({
        id: s.ID,
        name: s.Spec?.Name ?? s.ID,
        labels: s.Spec?.Labels ?? {},
        replicas: s.Spec?.Mode?.Replicated?.Replicas ?? 0,
      }));
    } catch (err) {
      throw engineError(err, 'list services');
    }
  }

  /** Every task Swarm keeps for the service (running ones and its recent history). */
  async function tasks(service: string): Promise<SwarmTask[]> {
    try {
      const list = (await docker.listTasks({ filters: { service: [service] } })) as RawTask[];
      return list.map(toTask);
    } catch (err) {
      throw engineError(err, `list tasks of ${service}`);
    }
  }

  async function nodes(): Promise<SwarmNodeInfo[]> {
    try {
      const list = (await docker.listNodes()) as RawNode[];
      return list.map(toNode).sort((a, b) => a.address.localeCompare(b.address, 'en', { numeric: true }) || a.id.localeCompare(b.id));
    } catch (err) {
      throw engineError(err, 'list nodes');
    }
  }

  /** Drain: Swarm moves the node's tasks elsewhere and places none there; active: usable again. */
  async function setAvailability(nodeId: string, availability: NodeAvailability): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let raw: RawNode;
      try {
        raw = (await docker.getNode(nodeId).inspect()) as RawNode;
      } catch (err) {
        if (statusOf(err) === 404) {
          throw new PierError('E_NODE_NOT_FOUND', `node ${nodeId} is not in the swarm`, { status: 404, hint: 'list the nodes with `pier nodes list`' });
        }
        throw engineError(err, `inspect node ${nodeId}`);
      }
      try {
        await docker.getNode(raw.ID).update({ ...raw.Spec, Availability: availability, version: raw.Version.Index });
        return;
      } catch (err) {
        if (attempt === 0 && /update out of sequence/i.test(dockerMessage(err))) continue;
        throw engineError(err, `update node ${nodeId}`);
      }
    }
  }

  return { requireManager, ensureService, scaleService, removeService, listServices, tasks, nodes, setAvailability };
}

export type SwarmServices = ReturnType<typeof createSwarmServices>;

interface RawTask {
  ID: string;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  DesiredState?: string;
  UpdatedAt?: string;
  Status?: {
    State?: string;
    Err?: string;
    Timestamp?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number }[] };
  };
}

interface RawNode {
  ID: string;
  Version: { Index: number };
  Spec: { Availability?: string; Role?: string; Labels?: Record<string, string> };
  Description?: { Hostname?: string; Resources?: { NanoCPUs?: number; MemoryBytes?: number }; Engine?: { EngineVersion?: string } };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Addr?: string };
}

export function toTask(raw: RawTask): SwarmTask {
  // Swarm's PortStatus has no host address: a target published on both families appears twice,
  // IPv4 first (the bridge driver binds 0.0.0.0 before ::). The first one is the IPv4 port.
  const published: Record<number, number[]> = {};
  for (const p of raw.Status?.PortStatus?.Ports ?? []) {
    if (p.TargetPort && p.PublishedPort) (published[p.TargetPort] ??= []).push(p.PublishedPort);
  }
  const ports: Record<number, number> = {};
  for (const [target, list] of Object.entries(published)) ports[Number(target)] = list[0] as number;
  const state = raw.Status?.State ?? 'new';
  const terminal = state === 'complete' || state === 'failed' || state === 'shutdown' || state === 'rejected';
  const updated = raw.Status?.Timestamp ?? raw.UpdatedAt;
  return {
    id: raw.ID,
    serviceId: raw.ServiceID,
    slot: raw.Slot ?? 0,
    nodeId: raw.NodeID || null,
    state: state as TaskState,
    desiredState: raw.DesiredState ?? 'running',
    error: raw.Status?.Err || null,
    containerId: raw.Status?.ContainerStatus?.ContainerID || null,
    exitCode: terminal ? (raw.Status?.ContainerStatus?.ExitCode ?? null) : null,
    ports,
    published,
    updatedAt: updated ? new Date(updated) : null,
  };
}

/**
 * The ports a task answers on at `address` (its node's): the IPv4 binding's port for an IPv4
 * address, the IPv6 one (listed last) for an IPv6 address. Keyed by container port, as strings
 * (an instance row's `ports`).
 */
export function taskPortsAt(task: Pick<SwarmTask, 'published'>, address: string): Record<string, number> {
  const v6 = address.includes(':');
  return Object.fromEntries(Object.entries(task.published).map(([target, list]) => [target, (v6 ? list[list.length - 1] : list[0]) as number]));
}

export function toNode(raw: RawNode): SwarmNodeInfo {
  // A manager may report 0.0.0.0 as its status address; its manager address has the real one.
  let address = raw.Status?.Addr ?? '';
  if ((address === '' || address === '0.0.0.0') && raw.ManagerStatus?.Addr) address = raw.ManagerStatus.Addr.replace(/:\d+$/, '');
  return {
    id: raw.ID,
    hostname: raw.Description?.Hostname ?? '',
    address,
    state: raw.Status?.State ?? 'unknown',
    availability: (raw.Spec.Availability ?? 'active') as NodeAvailability,
    role: raw.Spec.Role === 'manager' ? 'manager' : 'worker',
    labels: raw.Spec.Labels ?? {},
    capacity: { cpus: (raw.Description?.Resources?.NanoCPUs ?? 0) / 1e9, memoryBytes: raw.Description?.Resources?.MemoryBytes ?? 0 },
    engineVersion: raw.Description?.Engine?.EngineVersion ?? null,
  };
}

/** Whether a service's node pin or volume mounts differ from the wanted spec's (what a volume move changes). */
export function volumeHomeDiffers(current: DockerServiceSpec, wanted: DockerServiceSpec): boolean {
  const mounts = (s: DockerServiceSpec) => (s.TaskTemplate.ContainerSpec.Mounts ?? []).map((m) => `${m.Source}:${m.Target}:${m.VolumeOptions?.DriverConfig?.Options?.device ?? ''}`).sort().join(',');
  const pins = (s: DockerServiceSpec) => (s.TaskTemplate.Placement?.Constraints ?? []).filter((c) => c.startsWith('node.id==')).sort().join(',');
  return mounts(current) !== mounts(wanted) || pins(current) !== pins(wanted);
}
