// Watches the swarm for what Swarm does on its own — a node going down or coming back, a task
// moved to another node — and records it as Pier's events (node.down, node.up, instance.moved
// with the reason). It only reads the swarm: Swarm owns placement, restarts and moves; Pier owns
// the record. A look that fails (manager unreachable, database down) is logged and taken again
// at the next tick, with the last good look kept, so nothing is lost or reported twice.
import type { Logger } from 'pino';
import { inArray } from 'drizzle-orm';
import type { AdvisoryLocks, HeldLock } from '../../db/advisory-locks.js';
import type { Db } from '../../db/database.js';
import { apps, orgs } from '../../db/schema/index.js';
import type { EventLog } from '../event-log.js';
import { LABELS } from '../runtime/runtime.js';
import type { SwarmServices } from '../runtime/swarm-services.js';
import { lastRunning, swarmChanges, type SwarmChange, type SwarmLook } from './swarm-changes.js';

export interface SwarmWatcherOptions {
  db: Db;
  events: EventLog;
  services: SwarmServices;
  /** Only services labelled with this installation are this Pier's. */
  installationId: string;
  log: Logger;
  /** Between looks (default 2 s: Swarm's heartbeat is 5 s). */
  intervalMs?: number;
  /**
   * With several API servers on one database, only the one holding the watcher's lock records;
   * the others keep looking (so one takes over at once when the holder goes away).
   */
  locks?: AdvisoryLocks | undefined;
}

const LOCK = 'pier:swarm-watcher';

export interface SwarmWatcher {
  start(): void;
  /** One look now: records and returns what changed since the last good look (none when another server records). */
  check(): Promise<SwarmChange[]>;
  close(): Promise<void>;
}

export function createSwarmWatcher(options: SwarmWatcherOptions): SwarmWatcher {
  const { db, events, services } = options;
  const log = options.log.child({ component: 'swarm-watcher' });
  /** The last good look's nodes, and the last task seen running in each slot. */
  let last: SwarmLook | null = null;
  /** Service name → the app it runs, from its labels. */
  let appOf = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let closed = false;
  let held: HeldLock | null = null;

  /** True when this watcher records: it holds the lock (taken now if free), or there is none. */
  async function recorder(): Promise<boolean> {
    if (!options.locks) return true;
    if (held && !held.signal.aborted) return true;
    held = await options.locks.tryLock(LOCK);
    return held !== null;
  }

  async function look(): Promise<SwarmLook> {
    const list = await services.listServices({ [LABELS.managed]: 'true', [LABELS.installation]: options.installationId });
    const tasks: SwarmLook['tasks'] = {};
    for (const s of list) tasks[s.name] = await services.tasks(s.name);
    appOf = new Map(list.flatMap((s): [string, string][] => {
      const app = s.labels[LABELS.app];
      return app ? [[s.name, app]] : [];
    }));
    return { nodes: await services.nodes(), tasks };
  }

  async function record(changes: SwarmChange[]): Promise<void> {
    if (changes.length === 0) return;
    // A node serves every org of the installation: each org hears of it.
    const nodeChanges = changes.flatMap((c) => (c.type === 'instance.moved' ? [] : [c]));
    const orgIds = nodeChanges.length ? (await db.select({ id: orgs.id }).from(orgs)).map((o) => o.id) : [];
    for (const c of nodeChanges) {
      for (const orgId of orgIds) {
        await events.record({ orgId, type: c.type, reason: c.type === 'node.down' ? 'node-down' : 'node-up', message: c.message, data: { nodeId: c.nodeId, address: c.address } });
      }
    }
    const moves = changes.flatMap((c) => (c.type === 'instance.moved' ? [c] : []));
    const appIds = [...new Set(moves.map((m) => appOf.get(m.service)).filter((a): a is string => a !== undefined))];
    const owners = appIds.length ? await db.select({ id: apps.id, orgId: apps.orgId }).from(apps).where(inArray(apps.id, appIds)) : [];
    for (const m of moves) {
      const app = owners.find((a) => a.id === appOf.get(m.service));
      if (!app) continue; // a service of an app this database does not know: not ours to report
      await events.record({
        orgId: app.orgId,
        appId: app.id,
        type: 'instance.moved',
        reason: m.reason,
        message: m.message,
        data: { service: m.service, slot: m.slot, taskId: m.taskId, from: m.from, to: m.to },
      });
    }
  }

  async function check(): Promise<SwarmChange[]> {
    const now = await look();
    const seen = last ? swarmChanges(last, now) : [];
    const changes = (await recorder()) ? seen : [];
    await record(changes);
    last = { nodes: now.nodes, tasks: lastRunning(last?.tasks ?? {}, now) };
    for (const c of changes) log.info({ change: c.type, ...('address' in c ? { address: c.address } : { service: c.service, from: c.from, to: c.to }) }, c.message);
    return changes;
  }

  /** The next look is planned once this one ended, so looks never overlap or pile up. */
  function tick(): void {
    running = check()
      .catch((err: unknown) => log.warn({ err }, 'swarm look failed; trying again at the next one'))
      .finally(() => {
        if (closed) return;
        timer = setTimeout(tick, options.intervalMs ?? 2_000);
        timer.unref();
      });
  }

  return {
    start() {
      tick();
    },
    check,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      await running;
      await held?.release().catch((err: unknown) => log.warn({ err }, 'swarm watcher lock release failed'));
      held = null;
    },
  };
}
