// The volumes of a process group on a swarm. A volume belongs to one node: it is made there by
// that node's agent (agent-roots.ts) and its row names the node (node_id) and the root `node:ADDRESS`;
// the group's service is pinned to that node and binds the directory the agent made as a local
// Docker volume there (swarm-service-spec.ts). A per-instance volume has a volume per slot: all of
// them on the group's node, slot 0 as made first and slot k (k ≥ 1) with the id `SLOT0-s(k+1)`,
// so that one mount, templated on Swarm's task slot (1…N), binds each task to its own slot's
// volume, and the service's spec does not change with its count (a spec change replaces tasks). The node of a new volume is the group's other
// volumes' node, else the first swarm node, in the order of --node-agent, that is ready, active and
// has the labels of the group's placement. One writer: the plan (swarm-plan.ts) stops a group's
// old service before its new one starts; while a volume is restored or moved its group is held at
// zero tasks, and the volume service stops a writer by scaling its service to zero (a task stopped
// through its engine would be restarted by Swarm at once).
import type { Logger } from 'pino';
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { instances, volumes, type Instance, type Volume } from '../../db/schema/index.js';
import { newId } from '../ids.js';
import type { Manifest, VolumeSpec } from '../manifest.js';
import { PierError } from '../pier-error.js';
import { LABELS } from '../runtime/runtime.js';
import type { SwarmMount } from '../runtime/swarm-service-spec.js';
import type { SwarmNodeInfo, SwarmServices } from '../runtime/swarm-services.js';
import { nodeRootAddress, nodeRootName, type AgentRoots } from '../volumes/agent-roots.js';
import { dockerVolumeSpec } from '../volumes/docker-volume-name.js';
import { checkLease, type AppLeases, type Lease } from './app-leases.js';

export interface SwarmVolumesOptions {
  db: Db;
  leases: AppLeases;
  agents: AgentRoots;
  services: SwarmServices;
  installationId: string;
  log: Logger;
}

export interface GroupVolumes {
  /** The swarm node id every task of the group runs on. */
  nodeId: string;
  mounts: SwarmMount[];
}

interface AppRef {
  id: string;
  orgId: string;
  name: string;
}

const STOP_WAIT_MS = 60_000;
/** Task states whose container no longer runs (or never will). */
const ENDED = new Set<string>(['complete', 'failed', 'shutdown', 'rejected', 'remove', 'orphaned']);

/** The processes of a manifest that mount volumes. */
export function volumeProcesses(manifest: Manifest): Set<string> {
  return new Set((manifest.volumes ?? []).map((v) => v.process));
}

/** The processes that mount a volume shared by all their instances (one writer: one task on a swarm). */
export function sharedVolumeProcesses(manifest: Manifest): Set<string> {
  return new Set((manifest.volumes ?? []).filter((v) => !v.per_instance).map((v) => v.process));
}

/** The id of slot `slot` (0-based, ≥ 1) of a per-instance volume whose slot 0 is `first`. Pure. */
export function slotVolumeId(first: string, slot: number): string {
  return `${first}-s${slot + 1}`;
}

const SLOT_MARK = 'PIERSLOTMARK';

/**
 * A Go template of Swarm's (expanded per task in a mount's source, labels and driver options):
 * `first` for the task of slot 1, else `other` with the marker replaced by the task's slot. Pure.
 */
export function perSlot(first: string, other: string): string {
  if (first === other) return first;
  return `{{if eq .Task.Slot "1"}}${first}{{else}}${other.split(SLOT_MARK).join('{{.Task.Slot}}')}{{end}}`;
}

export function createSwarmVolumes(options: SwarmVolumesOptions) {
  const { db, leases, agents } = options;

  async function liveRows(appId: string): Promise<Volume[]> {
    return db.select().from(volumes).where(and(eq(volumes.appId, appId), isNull(volumes.deletedAt))).orderBy(asc(volumes.slot));
  }

  /** The row of one `[[volumes]]` entry, if made: by name, or a per-instance volume's first slot. */
  function rowOf(rows: Volume[], spec: VolumeSpec): Volume | undefined {
    return spec.per_instance ? rows.find((v) => v.spec === spec.name && v.perInstance) : rows.find((v) => v.name === spec.name);
  }

  function nodeOfAddress(address: string, nodes: SwarmNodeInfo[], volume: string): SwarmNodeInfo {
    const node = nodes.find((n) => n.address === address);
    if (!node) {
      throw new PierError('E_VOLUME_NODE_GONE', `volume ${volume} is on node ${address}, which is not in the swarm`, {
        status: 503,
        hint: 'bring that node back into the swarm (its data is there), or restore the volume from a snapshot on another node',
      });
    }
    return node;
  }

  function pickNode(nodes: SwarmNodeInfo[], labels: Record<string, string>, app: string, process: string): SwarmNodeInfo {
    for (const address of agents.addresses()) {
      const n = nodes.find((x) => x.address === address);
      if (n && n.state === 'ready' && n.availability === 'active' && Object.entries(labels).every(([k, v]) => n.labels[k] === v)) return n;
    }
    const fits = nodes.filter((n) => Object.entries(labels).every(([k, v]) => n.labels[k] === v)).map((n) => n.address);
    throw new PierError('E_NODE_AGENT_MISSING', `no ready swarm node with a node agent can hold the volumes of ${app}'s process ${process} (nodes that fit its placement: ${fits.join(', ') || 'none'})`, {
      status: 503,
      hint: 'run `pier agent` on a node and start pier server with --node-agent ADDRESS=http://ADDRESS:7710 and --node-agent-token-file FILE; see docs/several-machines.md',
    });
  }

  return {
    /**
     * The mounts and node of a group's service: finds each volume of the process, or makes it on
     * its node through that node's agent. Throws a coded error when the node's agent is missing or
     * does not answer, or the data is gone (the pass is tried again).
     */
    async prepare(app: AppRef, manifest: Manifest, process: string, nodes: SwarmNodeInfo[], lease: Lease, replicas = 1): Promise<GroupVolumes | undefined> {
      const specs = (manifest.volumes ?? []).filter((v) => v.process === process);
      if (specs.length === 0) return undefined;
      const rows = await liveRows(app.id);
      const made = specs.flatMap((s) => (s.per_instance ? rows.filter((v) => v.spec === s.name && v.perInstance) : rows.filter((v) => v.name === s.name)));
      // A group held at zero tasks makes no volume (as on one engine, where a volume is made when
      // its instance starts): one deleted meanwhile stays deleted, and can be undeleted, until a
      // task needs it. Its service then has no mount and no pin; the scale up sets them (repin).
      if (replicas === 0 && made.length === 0) return undefined;
      for (const v of made) {
        if (nodeRootAddress(v.root) === null) {
          throw new PierError('E_SWARM_VOLUME_LOCAL', `volume ${v.name} of ${app.name} is on this server's own root ${v.root}, which the swarm's tasks cannot mount`, {
            status: 409,
            hint: `restore a snapshot of it into a new volume on a swarm node: pier volumes restore --app ${app.name} SNAPSHOT --name NEW, and name NEW in [[volumes]]`,
          });
        }
      }
      const homes = [...new Set(made.map((v) => nodeRootAddress(v.root) as string))];
      if (homes.length > 1) {
        throw new PierError('E_VOLUME_NODES_DIFFER', `the volumes of ${app.name}'s process ${process} are on different nodes (${homes.join(', ')}), and its tasks run on one`, {
          status: 409,
          hint: 'keep one process\'s volumes on one node: restore one of them on the other\'s node',
        });
      }
      const node = homes[0] !== undefined ? nodeOfAddress(homes[0], nodes, made[0]?.name ?? '') : pickNode(nodes, manifest.processes[process]?.placement?.labels ?? {}, app.name, process);
      const driver = await agents.connect(node.address);
      const root = nodeRootName(node.address);
      const insert = async (id: string, name: string, spec: VolumeSpec, slot: number | null): Promise<Volume> => {
        await driver.create(id, { sizeLimitBytes: spec.size ?? null });
        checkLease(lease);
        const volume = await leases.fenced(lease, async (t) => {
          const [inserted] = await t.tx
            .insert(volumes)
            .values({ id, appId: app.id, name, spec: spec.name, process, mountPath: spec.path, slot, nodeId: `node_${node.id}`, driver: driver.kind, root, sizeLimitBytes: spec.size ?? null, perInstance: spec.per_instance })
            .returning();
          await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.created', reason: 'manifest', message: `volume ${name} created on node ${node.address} (${driver.kind})`, data: { volumeId: id, name, driver: driver.kind, node: node.address } });
          return inserted as Volume;
        });
        options.log.info({ app: app.name, volume: name, node: node.address }, 'volume created on its node');
        return volume;
      };
      const present = async (volume: Volume): Promise<void> => {
        if (await driver.exists(volume.id)) return;
        throw new PierError('E_VOLUME_MISSING', `the data of volume ${volume.name} (${driver.volumePath(volume.id)}) is missing on node ${node.address}`, {
          status: 500,
          hint: `restore it from a snapshot (pier snapshots list --app ${app.name}) or delete the volume (pier volumes delete --app ${app.name} ${volume.name})`,
        });
      };
      const mounts: SwarmMount[] = [];
      for (const spec of specs) {
        let volume = rowOf(rows, spec);
        if (!volume && replicas === 0) continue;
        if (!volume) volume = await insert(newId('vol'), spec.per_instance ? `${spec.name}-0` : spec.name, spec, spec.per_instance ? 0 : null);
        else await present(volume);
        const docker = dockerVolumeSpec(volume, driver.volumePath(volume.id), options.installationId);
        if (!spec.per_instance) {
          mounts.push({ name: docker.name, device: docker.device, target: spec.path, labels: docker.labels });
          continue;
        }
        // Every slot the service runs has its volume before its task starts.
        const first = volume;
        for (let slot = 1; slot < replicas; slot++) {
          const id = slotVolumeId(first.id, slot);
          const row = rows.find((v) => v.spec === spec.name && v.perInstance && v.slot === slot);
          if (!row) {
            // A deleted slot volume keeps its id (and its final snapshot) until its retention ends.
            const [gone] = await db.select({ name: volumes.name }).from(volumes).where(eq(volumes.id, id));
            if (gone) {
              throw new PierError('E_SWARM_VOLUMES', `the volume of slot ${slot} of ${app.name}'s process ${process} (${gone.name}) was deleted, and its tasks' slot ${slot + 1} mounts it`, {
                status: 409,
                hint: `bring it back with its data (pier volumes undelete --app ${app.name} ${gone.name}), or scale ${process} below ${slot + 1}`,
              });
            }
            await insert(id, `${spec.name}-${slot}`, spec, slot);
          }
          else if (row.id !== id) {
            throw new PierError('E_SWARM_VOLUMES', `volume ${row.name} of ${app.name} is not the one a task of slot ${slot + 1} mounts on a swarm (${id})`, {
              status: 409,
              hint: `restore it into the volume of that slot, or delete it (pier volumes delete --app ${app.name} ${row.name}) so that Pier makes it again`,
            });
          } else await present(row);
        }
        // What slot N's would be, with a marker for N: the template puts the task's slot there.
        const otherId = `${first.id}-s${SLOT_MARK}`;
        const other = dockerVolumeSpec({ ...first, id: otherId }, driver.volumePath(otherId), options.installationId);
        mounts.push({
          name: perSlot(docker.name, other.name),
          device: perSlot(docker.device, other.device),
          target: spec.path,
          labels: Object.fromEntries(Object.entries(docker.labels).map(([k, v]) => [k, perSlot(v, other.labels[k] ?? v)])),
        });
      }
      return { nodeId: node.id, mounts };
    },

    /** Processes whose volume is being restored or moved: held at zero tasks until it is ready. */
    async held(appId: string): Promise<Set<string>> {
      const rows = await liveRows(appId);
      return new Set(rows.filter((v) => v.state !== 'ready' && v.process).map((v) => v.process as string));
    },

    /** Each running task's volumes name it as their writer (snapshots pause it; a delete is refused). */
    async attachRunning(app: AppRef, rows: Instance[], manifestOf: (releaseId: string) => Promise<Manifest | null>, lease: Lease, slotOf: ReadonlyMap<string, number> = new Map()): Promise<void> {
      const running = rows.filter((r) => r.desiredState === 'running' && r.observedState === 'running');
      if (running.length === 0) return;
      const live = await liveRows(app.id);
      for (const r of running) {
        const manifest = await manifestOf(r.releaseId);
        for (const spec of (manifest?.volumes ?? []).filter((v) => v.process === r.process)) {
          // A per-instance volume: the one of the task's slot (Swarm's slot N is Pier's slot N - 1).
          const slot = slotOf.get(r.id);
          const volume = spec.per_instance && slot !== undefined ? live.find((v) => v.spec === spec.name && v.perInstance && v.slot === slot - 1) : rowOf(live, spec);
          if (!volume || volume.attachedInstanceId === r.id || nodeRootAddress(volume.root) === null) continue;
          await leases.fenced(lease, (t) => t.tx.update(volumes).set({ attachedInstanceId: r.id, updatedAt: new Date() }).where(and(eq(volumes.id, volume.id), eq(volumes.state, 'ready'))));
        }
      }
    },

    /** Whether a task of the app's process has not ended yet, on any of its services (as Swarm says). */
    async writerLive(group: { appId: string; process: string }): Promise<boolean> {
      const services = await options.services.listServices({ [LABELS.installation]: options.installationId, [LABELS.app]: group.appId, [LABELS.process]: group.process });
      for (const g of services) {
        const tasks = await options.services.tasks(g.name);
        if (tasks.some((t) => !ENDED.has(t.state))) return true;
      }
      return false;
    },

    /**
     * Stops a volume's writer on a swarm: its service is scaled to zero (a container stopped through
     * its engine would be replaced by Swarm), and this waits until none of its tasks runs.
     */
    async stopWriter(holder: { instanceId: string }): Promise<void> {
      const [row] = await db.select().from(instances).where(eq(instances.id, holder.instanceId));
      if (!row) return;
      await stopGroup({ appId: row.appId, process: row.process });
    },

    stopGroup,
  };

  /** Scales every service of the app's process to zero and waits until none of their tasks runs. */
  async function stopGroup(row: { appId: string; process: string }): Promise<void> {
    const groups = await options.services.listServices({ [LABELS.installation]: options.installationId, [LABELS.app]: row.appId, [LABELS.process]: row.process });
    for (const g of groups) {
      await options.services.scaleService(g.name, 0).catch((err: { code?: string }) => {
        if (err.code !== 'E_SERVICE_NOT_FOUND') throw err;
      });
    }
    const until = Date.now() + STOP_WAIT_MS;
    for (;;) {
      let live = 0;
      for (const g of groups) {
        const tasks = await options.services.tasks(g.name).catch(() => []);
        live += tasks.filter((t) => !ENDED.has(t.state)).length;
      }
      if (live === 0) return;
      if (Date.now() > until) throw new PierError('E_VOLUME_BUSY', `the tasks of ${row.process} did not stop`, { status: 409, hint: 'try again; nothing was changed' });
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export type SwarmVolumes = ReturnType<typeof createSwarmVolumes>;
