// What changed on the swarm between two looks, as Pier's events: a node went down or came back
// (node.down, node.up), a task's slot now runs on another node (instance.moved, with the reason
// the old task ended). Pure: the caller reads nodes and tasks (swarm-services.ts), keeps the last
// look, and records what this returns.
import type { SwarmNodeInfo, SwarmTask } from '../runtime/swarm-services.js';

export interface SwarmLook {
  nodes: SwarmNodeInfo[];
  /**
   * Tasks by service name. In the look before, the last task seen running in each slot (a slot's
   * move can span several looks: running, then pending, then running elsewhere).
   */
  tasks: Record<string, SwarmTask[]>;
}

export type SwarmChange =
  | { type: 'node.down' | 'node.up'; nodeId: string; address: string; message: string }
  | { type: 'instance.moved'; service: string; slot: number; from: string; to: string; taskId: string; reason: string; message: string };

export function swarmChanges(before: SwarmLook, after: SwarmLook): SwarmChange[] {
  const out: SwarmChange[] = [];
  const was = new Map(before.nodes.map((n) => [n.id, n]));
  const addressOf = (id: string | null): string => after.nodes.find((n) => n.id === id)?.address ?? was.get(id ?? '')?.address ?? id ?? '?';
  for (const node of after.nodes) {
    const old = was.get(node.id);
    if (!old) continue;
    if (old.state === 'ready' && node.state !== 'ready') {
      out.push({ type: 'node.down', nodeId: node.id, address: node.address, message: `node ${node.address} (${node.hostname}) is ${node.state}` });
    } else if (old.state !== 'ready' && node.state === 'ready') {
      out.push({ type: 'node.up', nodeId: node.id, address: node.address, message: `node ${node.address} (${node.hostname}) is ready again` });
    }
  }
  for (const [service, tasks] of Object.entries(after.tasks)) {
    const previous = before.tasks[service] ?? [];
    for (const task of tasks) {
      if (task.state !== 'running' || task.desiredState !== 'running' || task.nodeId === null) continue;
      if (previous.some((p) => p.id === task.id)) continue;
      // The task this one replaces: the same slot's last running one.
      const old = previous.find((p) => p.slot === task.slot && p.state === 'running' && p.nodeId !== null);
      if (!old || old.nodeId === task.nodeId) continue;
      const ended = tasks.find((k) => k.id === old.id);
      const reason = movedReason(old, ended, after.nodes);
      out.push({
        type: 'instance.moved',
        service,
        slot: task.slot,
        from: addressOf(old.nodeId),
        to: addressOf(task.nodeId),
        taskId: task.id,
        reason,
        message: `${service}.${task.slot} moved from ${addressOf(old.nodeId)} to ${addressOf(task.nodeId)}: ${reason.replace(/-/g, ' ')}`,
      });
    }
  }
  return out;
}

function movedReason(old: SwarmTask, ended: SwarmTask | undefined, nodes: SwarmNodeInfo[]): string {
  const node = nodes.find((n) => n.id === old.nodeId);
  // A drain is the operator's act and moves every task off the node at once; a drained node that
  // also misses a heartbeat (a starved engine) still had its tasks moved by the drain.
  if (node && node.availability === 'drain') return 'node-drained';
  if (node && node.state !== 'ready') return 'node-down';
  if (ended?.state === 'failed') return 'task-failed';
  return 'rescheduled';
}

/** The last task seen running per slot, carried from look to look (the `before` of the next). */
export function lastRunning(known: Record<string, SwarmTask[]>, look: SwarmLook): Record<string, SwarmTask[]> {
  const out: Record<string, SwarmTask[]> = {};
  for (const [service, tasks] of Object.entries(look.tasks)) {
    const bySlot = new Map((known[service] ?? []).map((k) => [k.slot, k]));
    for (const k of tasks) if (k.state === 'running' && k.desiredState === 'running' && k.nodeId !== null) bySlot.set(k.slot, k);
    out[service] = [...bySlot.values()];
  }
  return out;
}
