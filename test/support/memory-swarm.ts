// An in-memory stand-in for a swarm manager's services, tasks and nodes (the SwarmServices
// shape), for tests of the swarm reconciler's logic on a real database. It does what Swarm does
// to a replicated service that matters here: a new service runs its replicas at once, each task
// publishing every target port on its node; lowering the replicas shuts down the highest slots
// (Swarm's own choice, which Pier cannot steer); removing a service ends its tasks. The real
// engine is exercised by test/e2e/swarm.test.ts.
import { randomBytes } from 'node:crypto';
import { PierError } from '../../api/pier-error.js';
import type { SwarmGroupSpec } from '../../api/runtime/swarm-service-spec.js';
import type { SwarmNodeInfo, SwarmServices, SwarmTask } from '../../api/runtime/swarm-services.js';

export interface MemorySwarm extends SwarmServices {
  /** The spec each service was created with, by name (removed ones too). */
  readonly created: Map<string, SwarmGroupSpec>;
  /** Services that exist now, by name. */
  live(): string[];
  /** The running tasks of a service. */
  running(service: string): SwarmTask[];
  /** Moves a task's published port (as a node's engine would pick another after a restart). */
  republish(taskId: string, target: number, port: number): void;
}

export interface MemorySwarmOptions {
  /** Called with the tasks Swarm is about to shut down (a scale down or a removal), before it does. */
  beforeStop?: (tasks: SwarmTask[]) => Promise<void>;
}

const NODES: SwarmNodeInfo[] = [1, 2].map((i) => ({
  id: `node${i}`,
  hostname: `n${i}`,
  address: `198.18.250.${i}`,
  state: 'ready',
  availability: 'active',
  role: i === 1 ? 'manager' : 'worker',
  labels: {},
  capacity: { cpus: 2, memoryBytes: 2 ** 31 },
  engineVersion: '20.10',
}));

export function createMemorySwarm(options: MemorySwarmOptions = {}): MemorySwarm {
  const services = new Map<string, { id: string; spec: SwarmGroupSpec; tasks: SwarmTask[] }>();
  const created = new Map<string, SwarmGroupSpec>();
  let nextPort = 30_000;

  function task(serviceId: string, spec: SwarmGroupSpec, slot: number): SwarmTask {
    const published: Record<number, number[]> = {};
    for (const p of spec.ports) published[p] = [nextPort++];
    return {
      id: randomBytes(13).toString('hex').slice(0, 25),
      serviceId,
      slot,
      nodeId: (NODES[(slot - 1) % NODES.length] as SwarmNodeInfo).id,
      state: 'running',
      desiredState: 'running',
      error: null,
      containerId: randomBytes(32).toString('hex'),
      exitCode: null,
      ports: Object.fromEntries(Object.entries(published).map(([k, v]) => [k, v[0] as number])),
      published,
      updatedAt: new Date(),
    };
  }

  async function stop(list: SwarmTask[]): Promise<void> {
    if (list.length === 0) return;
    await options.beforeStop?.(list);
    for (const t of list) {
      t.desiredState = 'shutdown';
      t.state = 'shutdown';
      t.updatedAt = new Date();
    }
  }

  async function scaleService(name: string, replicas: number): Promise<void> {
    const s = services.get(name);
    if (!s) throw new PierError('E_SERVICE_NOT_FOUND', `swarm service ${name} does not exist`, { status: 404 });
    const running = s.tasks.filter((t) => t.desiredState === 'running').sort((a, b) => a.slot - b.slot);
    s.spec = { ...s.spec, replicas };
    if (running.length > replicas) await stop(running.slice(replicas));
    for (let slot = running.length + 1; slot <= replicas; slot++) s.tasks.push(task(s.id, s.spec, slot));
  }

  return {
    created,
    live: () => [...services.keys()].sort(),
    running: (service) => (services.get(service)?.tasks ?? []).filter((t) => t.state === 'running'),
    republish(taskId, target, port) {
      for (const s of services.values()) {
        const t = s.tasks.find((x) => x.id === taskId);
        if (!t) continue;
        t.published[target] = [port];
        t.ports[target] = port;
        return;
      }
      throw new Error(`no task ${taskId}`);
    },
    async requireManager() {},
    async ensureService(spec) {
      const existing = services.get(spec.name);
      if (existing) {
        await scaleService(spec.name, spec.replicas);
        return { id: existing.id, created: false };
      }
      const id = randomBytes(12).toString('hex');
      const entry = { id, spec, tasks: [] as SwarmTask[] };
      for (let slot = 1; slot <= spec.replicas; slot++) entry.tasks.push(task(id, spec, slot));
      services.set(spec.name, entry);
      created.set(spec.name, spec);
      return { id, created: true };
    },
    scaleService,
    async removeService(name) {
      const s = services.get(name);
      if (!s) return;
      await stop(s.tasks.filter((t) => t.desiredState === 'running'));
      services.delete(name);
    },
    async listServices(labels) {
      return [...services.values()]
        .filter((s) => Object.entries(labels).every(([k, v]) => s.spec.labels[k] === v))
        .map((s) => ({ id: s.id, name: s.spec.name, labels: s.spec.labels, replicas: s.spec.replicas }));
    },
    async tasks(service) {
      return (services.get(service)?.tasks ?? []).map((t) => ({ ...t, ports: { ...t.ports }, published: { ...t.published } }));
    },
    async nodes() {
      return NODES.map((n) => ({ ...n }));
    },
    async setAvailability() {},
  };
}
