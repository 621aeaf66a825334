// What Pier asks of Swarm for one (app, release, process group): a replicated service, and how it
// reads as a Docker ServiceSpec. Pure, so the mapping is unit-tested without an engine.
//
// Choices, each for a measured reason (docs/several-machines.md):
// - ports are published in host mode with no published port: each task gets a port of its own on
//   its node, reached at the node's address, and the client's address is kept. The routing mesh
//   (ingress) is never used: it needs IPVS and SNATs the client away.
// - endpoint mode dnsrr: no virtual IP, so nothing is allocated on the ingress network.
// - Swarm restarts a task that exits (Condition any), after the first crash-backoff step; it has no
//   growing delay, so the spec carries Pier's first step and window.
// - spread "node" is Swarm's MaxReplicas 1: at most one task of the service per node.
// - a volume is a Docker `local` volume binding the directory its node's agent made (type none, o
//   bind): Swarm creates it on the task's node as the task starts, labelled as Pier's, and the
//   service is pinned to that node (node.id==…), since the data is there alone.
// - no UpdateConfig/RollbackConfig: Pier never updates a service's task template in place; a new
//   release is a new service (rollout.ts), so Swarm's rolling update never runs.

export interface SwarmGroupSpec {
  /** The service's name: [a-zA-Z0-9-], at most 63 characters. */
  name: string;
  /** An image id (`sha256:…`, present on every node) or a `repo@sha256:…` digest reference. */
  image: string;
  cmd?: string[] | undefined;
  env: Record<string, string>;
  /** On the service and on each task's container (Pier's LABELS). */
  labels: Record<string, string>;
  replicas: number;
  /** Container ports to publish in host mode (endpoint targets and check ports), each once. */
  ports: number[];
  memoryBytes?: number | undefined;
  /** Seconds a stopping task gets before it is killed. */
  stopGraceSeconds: number;
  restart: { delayMs: number; windowMs: number };
  /** `nodeId`: the swarm node the tasks must run on (the node holding the group's volumes). */
  placement: { onePerNode: boolean; nodeLabels: Record<string, string>; nodeId?: string | undefined };
  /** Volumes, each a directory on the pinned node bound into the task's container. */
  mounts?: SwarmMount[] | undefined;
  /** Networks the tasks join (a private overlay) with the names they answer there (swarm-private.ts). */
  networks?: { name: string; aliases: string[] }[] | undefined;
}

export interface SwarmMount {
  /** The Docker volume's name on the node (docker-volume-name.ts). */
  name: string;
  /** The directory on the node it binds (the path the node's agent reports). */
  device: string;
  target: string;
  labels: Record<string, string>;
}

/** The subset of Docker's ServiceSpec Pier sets (Engine API 1.41). */
export interface DockerServiceSpec {
  Name: string;
  Labels: Record<string, string>;
  TaskTemplate: {
    ContainerSpec: {
      Image: string;
      Args?: string[];
      Env: string[];
      Labels: Record<string, string>;
      StopGracePeriod: number;
      Mounts?: {
        Type: 'volume';
        Source: string;
        Target: string;
        VolumeOptions: { Labels: Record<string, string>; DriverConfig: { Name: 'local'; Options: Record<string, string> } };
      }[];
    };
    Resources?: { Limits: { MemoryBytes: number } };
    RestartPolicy: { Condition: 'any'; Delay: number; MaxAttempts: number; Window: number };
    Placement: { Constraints: string[]; MaxReplicas?: number };
    Networks?: { Target: string; Aliases: string[] }[];
  };
  Mode: { Replicated: { Replicas: number } };
  EndpointSpec: { Mode: 'dnsrr'; Ports: { Protocol: 'tcp'; TargetPort: number; PublishMode: 'host' }[] };
}

const NS_PER_MS = 1_000_000;

export function toDockerServiceSpec(spec: SwarmGroupSpec): DockerServiceSpec {
  const constraints = Object.entries(spec.placement.nodeLabels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `node.labels.${k}==${v}`);
  if (spec.placement.nodeId) constraints.push(`node.id==${spec.placement.nodeId}`);
  return {
    Name: spec.name,
    Labels: spec.labels,
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        // Args, not Command: Pier's cmd replaces the image's CMD and keeps its ENTRYPOINT, as on Docker.
        ...(spec.cmd === undefined ? {} : { Args: spec.cmd }),
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        Labels: spec.labels,
        StopGracePeriod: spec.stopGraceSeconds * 1_000 * NS_PER_MS,
        ...(spec.mounts?.length
          ? {
              Mounts: spec.mounts.map((m) => ({
                Type: 'volume' as const,
                Source: m.name,
                Target: m.target,
                VolumeOptions: { Labels: m.labels, DriverConfig: { Name: 'local' as const, Options: { type: 'none', o: 'bind', device: m.device } } },
              })),
            }
          : {}),
      },
      ...(spec.memoryBytes === undefined ? {} : { Resources: { Limits: { MemoryBytes: spec.memoryBytes } } }),
      RestartPolicy: { Condition: 'any', Delay: spec.restart.delayMs * NS_PER_MS, MaxAttempts: 0, Window: spec.restart.windowMs * NS_PER_MS },
      Placement: { Constraints: constraints, ...(spec.placement.onePerNode ? { MaxReplicas: 1 } : {}) },
      ...(spec.networks?.length ? { Networks: spec.networks.map((n) => ({ Target: n.name, Aliases: n.aliases })) } : {}),
    },
    Mode: { Replicated: { Replicas: spec.replicas } },
    EndpointSpec: {
      Mode: 'dnsrr',
      Ports: [...new Set(spec.ports)].sort((a, b) => a - b).map((p) => ({ Protocol: 'tcp', TargetPort: p, PublishMode: 'host' })),
    },
  };
}
