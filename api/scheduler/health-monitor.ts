// Runs each running instance's health check on its interval and records transitions: starting →
// healthy, healthy → unhealthy (out of the route table), and a restart after too many failures.
// The instances are read from the database when a check is due (so a probe never acts on a stale
// row), when poked (this server started or changed an instance), and every `rereadMs` for the
// instances other API servers start; a tick with none of these reads nothing (an idle server).
// The check is the manifest's, or the implicit readiness check of a process behind endpoints
// (readiness-check.ts), which never restarts.
// Each transition is an event carrying the check's output, written with it in one transaction.
// A check or restart that fails (engine or database down) is logged, recorded and retried with
// backoff: nothing here may end the process.
import type { Logger } from 'pino';
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, deployments, instances, releases, type Instance, type InstanceHealth } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import type { Transactions } from '../transactions.js';
import type { Runtime } from '../runtime/runtime.js';
import { probe, type ExecFn } from './health-probe.js';
import { effectiveCheck, type ProcessCheck } from './readiness-check.js';

export interface HealthMonitorOptions {
  db: Db;
  runtime: Runtime;
  transactions: Transactions;
  log: Logger;
  /** Called when an instance enters or leaves the route table, or must be replaced. */
  onChange: (appId: string) => void;
  exec: ExecFn;
  tickMs?: number;
  /** Between two reads when no check is due and nothing poked (default 5 s): other servers' instances. */
  rereadMs?: number;
  /** After a failed check run or restart, wait min·2^n ms (up to max) before the next try. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

interface Track {
  nextAt: number;
  running: boolean;
  successes: number;
  failures: number;
  /** Errors in a row (not failed checks: failures of our own work), for the backoff. */
  errors: number;
  /** The restart is recorded and its stop not yet done (retried after an engine error). */
  restarting: boolean;
}

export interface HealthMonitor {
  start(): void;
  /**
   * Look now rather than at the next tick: an instance that just started is probed at once, so a
   * rollout (and the edge) waits for its process to listen, not for a timer.
   */
  poke(): void;
  close(): Promise<void>;
}

/** The default of `rereadMs`. */
export const HEALTH_REREAD_MS = 5_000;

export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const { db, transactions } = options;
  const log = options.log.child({ component: 'health' });
  const retryMin = options.retryMinMs ?? 1_000;
  const retryMax = options.retryMaxMs ?? 60_000;
  const rereadMs = options.rereadMs ?? HEALTH_REREAD_MS;
  const tracks = new Map<string, Track>();
  const inflight = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let ticking = false;
  let poked = false;
  /** A poke arrived while a tick ran: that tick may have read the rows before the new instance. */
  let again = false;
  let closed = false;
  /** Poked since the last read: the instances may have changed. */
  let stale = true;
  let readAt = 0;

  /** A check whose time has come, of an instance read before. */
  function due(now: number): boolean {
    for (const t of tracks.values()) if (!t.running && t.nextAt <= now) return true;
    return false;
  }

  async function tick(): Promise<void> {
    if (ticking) return;
    if (!stale && Date.now() - readAt < rereadMs && !due(Date.now())) return;
    ticking = true;
    try {
      stale = false;
      readAt = Date.now();
      const rows = await db
        .select({ inst: instances, manifest: releases.manifest, orgId: apps.orgId })
        .from(instances)
        .innerJoin(releases, eq(releases.id, instances.releaseId))
        .innerJoin(apps, eq(apps.id, instances.appId))
        .where(and(eq(instances.desiredState, 'running'), eq(instances.observedState, 'running'), inArray(instances.health, ['starting', 'healthy', 'unhealthy'])));
      // Read only when some check is to run: an idle tick is one query, not two.
      let rolling: Set<string> | undefined;
      const rollingNow = async (): Promise<Set<string>> =>
        (rolling ??= new Set((await db.select({ releaseId: deployments.releaseId }).from(deployments).where(eq(deployments.state, 'running'))).map((d) => d.releaseId)));
      const now = Date.now();
      const seen = new Set<string>();
      for (const { inst, manifest, orgId } of rows) {
        seen.add(inst.id);
        const check = effectiveCheck(manifest as Manifest, inst.process);
        // No container yet (a start cut short, e.g. by a database outage): nothing to probe.
        if (!check || !inst.containerId) continue;
        let track = tracks.get(inst.id);
        if (!track) tracks.set(inst.id, (track = { nextAt: now, running: false, successes: 0, failures: 0, errors: 0, restarting: false }));
        if (track.running || track.nextAt > now) continue;
        const inRollout = (await rollingNow()).has(inst.releaseId);
        track.running = true;
        // A starting instance is looked at sooner when its check says so: a rollout waits for it.
        track.nextAt = now + (inst.health === 'starting' && check.start_interval !== undefined ? check.start_interval : check.interval);
        const t = track;
        const p = runOne(inst, orgId, check, t, inRollout)
          .then(
            () => void (t.errors = 0),
            (err: unknown) => {
              t.errors++;
              const delay = Math.min(retryMin * 2 ** (t.errors - 1), retryMax);
              t.nextAt = Date.now() + Math.max(delay, check.interval);
              log.warn({ err, instance: inst.id, app: inst.appId, attempt: t.errors, retryInMs: delay }, 'health check round failed; retrying');
            },
          )
          .finally(() => {
            t.running = false;
            inflight.delete(p);
          });
        inflight.add(p);
      }
      for (const id of tracks.keys()) if (!seen.has(id)) tracks.delete(id);
    } catch (err) {
      log.error({ err }, 'health tick failed');
    } finally {
      ticking = false;
      if (again && !closed) {
        again = false;
        setImmediate(() => void tick().catch((err: unknown) => log.error({ err }, 'health tick failed')));
      }
    }
  }

  async function runOne(inst: Instance, orgId: string, check: ProcessCheck, track: Track, inRollout: boolean): Promise<void> {
    const result = await probe(check, { instanceId: inst.id, address: inst.address, containerId: inst.containerId ?? '' }, {
      exec: options.exec,
      // On a swarm the task is reached at its node's address and the port it is published on there.
      connect: (a, p, o) => options.runtime.connect(a, inst.ports?.[String(p)] ?? p, o),
    });
    const inGrace = inst.health === 'starting' && inst.startedAt !== null && Date.now() - inst.startedAt.getTime() < check.grace;
    if (result.ok) {
      track.failures = 0;
      track.successes++;
      if (inst.health !== 'healthy' && track.successes >= check.healthy_threshold) await transition(inst, orgId, 'healthy', result.output);
      return;
    }
    track.successes = 0;
    if (inGrace) return remember(inst, result.output);
    track.failures++;
    if (inst.health === 'healthy' && track.failures >= check.unhealthy_threshold) {
      await transition(inst, orgId, 'unhealthy', result.output);
    } else {
      await remember(inst, result.output);
    }
    // A new instance of a rollout is judged by the rollout's deadline, not restarted.
    if (check.restart_threshold !== null && track.failures >= check.restart_threshold && !(inRollout && inst.health === 'starting')) {
      // A failed restart throws: the failures stay counted, so the next round tries again.
      await restart(inst, orgId, `restarted: ${result.output} (${track.failures} failures in a row)`, track);
      track.failures = 0;
    }
  }

  async function remember(inst: Instance, output: string): Promise<void> {
    if (inst.healthOutput === output) return;
    inst.healthOutput = output;
    await db.update(instances).set({ healthOutput: output }).where(eq(instances.id, inst.id));
  }

  async function transition(inst: Instance, orgId: string, health: InstanceHealth, output: string): Promise<void> {
    const now = new Date();
    await transactions.run(async (t) => {
      await t.tx.update(instances).set({ health, healthOutput: output, healthChangedAt: now, updatedAt: now }).where(eq(instances.id, inst.id));
      await t.record({
        orgId,
        appId: inst.appId,
        instanceId: inst.id,
        type: `instance.${health}`,
        reason: health === 'healthy' ? 'check-passed' : 'check-failed',
        message: `${inst.id} is ${health}: ${output}`,
        data: { output, previous: inst.health },
      });
    });
    log.info({ instance: inst.id, health, output }, 'health changed');
    inst.health = health;
    options.onChange(inst.appId);
  }

  async function restart(inst: Instance, orgId: string, reason: string, track: Track): Promise<void> {
    if (!track.restarting) {
      log.warn({ instance: inst.id, reason }, 'restarting unhealthy instance');
      await transactions.run(async (t) => {
        await t.tx.update(instances).set({ lastReason: reason, updatedAt: new Date() }).where(eq(instances.id, inst.id));
        await t.record({ orgId, appId: inst.appId, instanceId: inst.id, type: 'instance.restarted', reason: 'check-failed', message: `${inst.id} ${reason}`, data: {} });
      });
      track.restarting = true;
    }
    try {
      // The reconciler sees the container stop and starts a replacement.
      if (inst.containerId) await options.runtime.stop(inst.containerId, 5);
    } catch (err) {
      // Said once per streak of failed restarts, not at every retry.
      if (track.errors === 0) {
        const why = err instanceof Error ? err.message : String(err);
        await transactions
          .run((t) =>
            t.record({ orgId, appId: inst.appId, instanceId: inst.id, type: 'instance.restart-failed', reason: 'runtime-error', message: `${inst.id} could not be restarted: ${why}; retrying`, data: { error: why } }),
          )
          .catch((recordErr: unknown) => log.warn({ err: recordErr, instance: inst.id }, 'cannot record the failed restart'));
      }
      throw err;
    }
    track.restarting = false;
    // Stopped: its last check output stays the reason; the reconciler replaces it.
    track.nextAt = Infinity;
    options.onChange(inst.appId);
  }

  return {
    start() {
      timer = setInterval(() => void tick().catch((err: unknown) => log.error({ err }, 'health tick failed')), options.tickMs ?? 500);
      timer.unref();
    },
    poke() {
      if (closed) return;
      stale = true;
      if (poked || timer === undefined) return;
      poked = true;
      setImmediate(() => {
        if (ticking) again = true;
        poked = false;
        if (!closed) void tick().catch((err: unknown) => log.error({ err }, 'health tick failed'));
      });
    },
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await Promise.allSettled([...inflight]);
    },
  };
}
