// The reconciler's actions on one instance, each idempotent and fenced: every database write runs
// under the app's lease (app-leases.ts) and records its event in the same transaction, only when
// the state really changes. A start has two phases: the instance row is written first, then the
// container is created under the instance's id as its name, so a start cut between the two is
// finished by a later pass (or adopts the container it finds) instead of starting twice.
import type { Logger } from 'pino';
import { and, eq, isNull, ne } from 'drizzle-orm';
import { instances, type Instance, type Release } from '../../db/schema/index.js';
import { newInstanceId } from '../ids.js';
import type { Manifest } from '../manifest.js';
import { isPierError, PierError } from '../pier-error.js';
import type { ContainerInfo, ContainerSpec, MountSpec, NetworkSpec, Runtime } from '../runtime/runtime.js';
import type { VolumeAttacher } from '../volumes/volume-attacher.js';
import type { PrivateNetworks } from '../private/private-networks.js';
import { checkLease, type AppLeases, type Lease } from './app-leases.js';
import { createContainerSpecs } from './container-spec.js';
import { describeExit } from './exit-reason.js';
import { effectiveCheck } from './readiness-check.js';

export interface InstanceActionsOptions {
  runtime: Runtime;
  leases: AppLeases;
  nodeId: string;
  installationId: string;
  /** The network every instance joins; its address there is where the edge and checks reach it. */
  network: NetworkSpec;
  /** Seconds a stopping container gets before it is killed. */
  stopTimeoutSeconds?: number;
  /** Attaches the volumes of processes that have them; without it, a release with volumes cannot start. */
  volumes?: VolumeAttacher | undefined;
  /** The private network an app's instances join as well (api/private/); none when unset. */
  privateNetworks?: PrivateNetworks | undefined;
  /** The release's secret values (api/secret-service.ts), decrypted for the start; without it, a release with secrets cannot start. */
  secrets?: ((release: Release) => Promise<Record<string, string>>) | undefined;
}

export interface ActionContext {
  app: { id: string; orgId: string; name: string; environment?: string };
  lease: Lease;
  log: Logger;
  /** Releases by id, loaded by the pass (the current one and those of instances it touches). */
  release(id: string): Promise<Release | null>;
}

/** Engine errors after which a start is retried later rather than recorded as a failed instance. */
const TRANSIENT = new Set(['E_RUNTIME_UNAVAILABLE', 'E_NETWORK_NOT_FOUND', 'E_VOLUME_ATTACHED', 'E_VOLUME_BUSY']);

export function createInstanceActions(options: InstanceActionsOptions) {
  const { runtime, leases } = options;
  const stopTimeout = options.stopTimeoutSeconds ?? 10;
  const specs = createContainerSpecs(options);

  /** Phase one: the row, so the instance exists before its container does. */
  async function start(process: string, release: Release, ctx: ActionContext): Promise<void> {
    const spec = (release.manifest as Manifest).processes[process];
    if (!spec) return;
    const row = await leases.fenced(ctx.lease, async (t) => {
      const [inserted] = await t.tx
        .insert(instances)
        .values({
          id: newInstanceId(ctx.app.name, process),
          appId: ctx.app.id,
          releaseId: release.id,
          process,
          nodeId: options.nodeId,
          health: effectiveCheck(release.manifest as Manifest, process) ? 'starting' : 'none',
        })
        .returning();
      return inserted;
    });
    if (row) await create(row, ctx);
  }

  /** Phase two: the container, named after the row; one that exists already is adopted. */
  async function create(row: Instance, ctx: ActionContext): Promise<void> {
    const release = await ctx.release(row.releaseId);
    if (!release) return;
    checkLease(ctx.lease);
    const log = ctx.log.child({ instance: row.id });
    let info: ContainerInfo | null;
    try {
      const mounts = await attachVolumes(row, release, ctx);
      const containerId = await runWithNetwork(await specs.full(row, release, ctx.app, mounts, log), ctx, log);
      info = (await runtime.inspect(containerId)) ?? stub(containerId, row.id);
    } catch (err) {
      if (isPierError(err) && err.code === 'E_CONTAINER_CONFLICT') {
        // Created by an earlier attempt (this server before a crash, or a holder that lost the lock).
        info = await runtime.inspect(row.id);
        if (!info) throw err;
        log.info({ container: info.id }, 'adopting the container of an interrupted start');
      } else if (isPierError(err) && TRANSIENT.has(err.code)) {
        throw err; // the row stays pending; a later pass creates it
      } else {
        return failed(row, release, err, ctx);
      }
    }
    await bind(row, info, ctx, release);
  }

  async function attachVolumes(row: Instance, release: Release, ctx: ActionContext): Promise<MountSpec[]> {
    const manifest = release.manifest as Manifest;
    if (!(manifest.volumes ?? []).some((v) => v.process === row.process)) return [];
    if (!options.volumes) {
      throw new PierError('E_VOLUMES_UNAVAILABLE', 'this server has no volume storage configured', { status: 503, hint: 'set PIER_VOLUMES_DIR for pier server' });
    }
    return options.volumes.attach(row, manifest, ctx);
  }

  /**
   * Runs the container; a network removed behind Pier's back (or not made at start, the engine
   * being down) is made again and the run tried once more.
   */
  async function runWithNetwork(spec: ContainerSpec, ctx: ActionContext, log: Logger): Promise<string> {
    try {
      return await runtime.run(spec);
    } catch (err) {
      if (!isPierError(err) || err.code !== 'E_NETWORK_NOT_FOUND') throw err;
      log.warn({ network: options.network.name }, 'network missing; creating it');
      await runtime.ensureNetwork(options.network);
      for (const name of spec.alsoJoin ?? []) options.privateNetworks?.forget(name);
      return runtime.run({ ...spec, alsoJoin: await specs.privateNetwork(ctx.app, log) });
    }
  }

  /** Records the container of a row that had none: the instance has started. */
  async function bind(row: Instance, info: ContainerInfo, ctx: ActionContext, release: Release | null): Promise<void> {
    const address = info.networks[options.network.name] ?? null;
    const now = new Date();
    const bound = await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({ containerId: info.id, address, startedAt: info.startedAt ?? now, observedState: info.state === 'running' ? 'running' : 'starting', updatedAt: now })
        .where(and(eq(instances.id, row.id), isNull(instances.containerId)))
        .returning();
      if (!updated) return false;
      await t.record({
        orgId: ctx.app.orgId,
        appId: ctx.app.id,
        instanceId: row.id,
        type: 'instance.started',
        reason: 'scheduled',
        message: `${row.id} started (release v${release?.version ?? '?'}, process ${row.process})`,
        data: { releaseId: row.releaseId, version: release?.version ?? null, process: row.process, containerId: info.id, address },
      });
      return true;
    });
    if (bound) {
      row.containerId = info.id;
      row.address = address;
      ctx.log.info({ instance: row.id, container: info.id, address, release: release?.version }, 'instance started');
    }
  }

  async function failed(row: Instance, release: Release, err: unknown, ctx: ActionContext): Promise<void> {
    const message = `${row.id} failed to start: ${isPierError(err) ? err.message : String(err)}`;
    const now = new Date();
    const changed = await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({ desiredState: 'stopped', observedState: 'failed', lastReason: message, stoppedAt: now, updatedAt: now })
        .where(and(eq(instances.id, row.id), eq(instances.desiredState, 'running')))
        .returning();
      if (!updated) return false;
      await t.record({
        orgId: ctx.app.orgId,
        appId: ctx.app.id,
        instanceId: row.id,
        type: 'instance.failed',
        reason: 'start-failed',
        message,
        data: { releaseId: release.id, process: row.process },
      });
      return true;
    });
    if (changed) ctx.log.error({ err, instance: row.id }, 'instance failed to start');
  }

  /** The container of an instance that should run has stopped: record why, once. */
  async function exited(row: Instance, ctx: ActionContext): Promise<void> {
    const info = row.containerId ? await runtime.inspect(row.containerId) : null;
    const why = describeExit(row.id, info);
    const lastLogs = info ? (await runtime.logs(info.id, 10).catch(() => [])).map((l) => l.line) : [];
    const now = new Date();
    const changed = await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({
          desiredState: 'stopped',
          observedState: why.reason === 'start-failed' ? 'failed' : 'exited',
          lastExitCode: why.exitCode,
          lastOom: why.oom,
          lastReason: why.message,
          stoppedAt: info?.finishedAt ?? now,
          updatedAt: now,
        })
        .where(and(eq(instances.id, row.id), eq(instances.desiredState, 'running')))
        .returning();
      if (!updated) return false;
      await t.record({
        orgId: ctx.app.orgId,
        appId: ctx.app.id,
        instanceId: row.id,
        type: 'instance.exited',
        reason: why.reason,
        message: why.message,
        data: { exitCode: why.exitCode, oom: why.oom, releaseId: row.releaseId, process: row.process, lastLogs },
      });
      return true;
    });
    if (changed) ctx.log.warn({ instance: row.id, reason: why.reason, exitCode: why.exitCode }, 'instance exited');
  }

  /** Leaves the route table now; the container is stopped by a later pass once drained. */
  async function drain(row: Instance, reason: string, drainMs: number, ctx: ActionContext): Promise<void> {
    const now = new Date();
    const changed = await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({ desiredState: 'stopped', drainUntil: new Date(now.getTime() + drainMs), lastReason: reason, updatedAt: now })
        .where(and(eq(instances.id, row.id), eq(instances.desiredState, 'running')))
        .returning();
      return updated !== undefined;
    });
    if (changed) ctx.log.info({ instance: row.id, reason, drainMs }, 'instance draining');
  }

  async function stop(row: Instance, ctx: ActionContext): Promise<void> {
    checkLease(ctx.lease);
    if (row.containerId) await runtime.stop(row.containerId, stopTimeout);
    await stopped(row, ctx);
  }

  /** Records that an instance that should not run no longer does (event only on the change). */
  async function stopped(row: Instance, ctx: ActionContext): Promise<void> {
    const reason = row.lastReason ?? 'stopped';
    const now = new Date();
    const changed = await leases.fenced(ctx.lease, async (t) => {
      const [updated] = await t.tx
        .update(instances)
        .set({ observedState: 'stopped', stoppedAt: now, updatedAt: now })
        .where(and(eq(instances.id, row.id), eq(instances.desiredState, 'stopped'), ne(instances.observedState, 'stopped')))
        .returning();
      if (!updated) return false;
      await t.record({
        orgId: ctx.app.orgId,
        appId: ctx.app.id,
        instanceId: row.id,
        type: 'instance.stopped',
        reason: reason.replace(/ /g, '-'),
        message: `${row.id} stopped: ${reason}`,
        data: { releaseId: row.releaseId, process: row.process },
      });
      return true;
    });
    if (changed) ctx.log.info({ instance: row.id, reason }, 'instance stopped');
  }

  /** Docker says the container runs: copy that (and its address) into the observed columns. */
  async function observedRunning(row: Instance, info: ContainerInfo, ctx: ActionContext): Promise<void> {
    const address = info.networks[options.network.name] ?? row.address;
    await leases.fenced(ctx.lease, (t) =>
      t.tx
        .update(instances)
        .set({ observedState: 'running', address, updatedAt: new Date() })
        .where(and(eq(instances.id, row.id), eq(instances.desiredState, 'running'), ne(instances.observedState, 'running'))),
    );
    row.observedState = 'running';
    row.address = address;
  }

  /**
   * A running instance whose recorded address is not its container's on Pier's network: one
   * started before Pier had its network is joined to it (no restart, no gap), and the address the
   * edge and the checks use is written. Returns true when the address changed.
   */
  async function observedAddress(row: Instance, info: ContainerInfo, ctx: ActionContext): Promise<boolean> {
    const name = options.network.name;
    let address = info.networks[name] ?? null;
    if (address === null) {
      try {
        await runtime.connectNetwork(info.id, name);
      } catch (err) {
        if (!isPierError(err) || err.code !== 'E_NETWORK_NOT_FOUND') throw err;
        await runtime.ensureNetwork(options.network);
        await runtime.connectNetwork(info.id, name);
      }
      address = (await runtime.inspect(info.id))?.networks[name] ?? null;
      ctx.log.info({ instance: row.id, container: info.id, address }, `joined a running container to the network ${name}`);
    }
    if (address === row.address) return false;
    await leases.fenced(ctx.lease, (t) => t.tx.update(instances).set({ address, updatedAt: new Date() }).where(and(eq(instances.id, row.id), eq(instances.containerId, info.id))));
    row.address = address;
    return true;
  }

  return { start, create, bind, exited, drain, stop, stopped, observedRunning, observedAddress };
}

export type InstanceActions = ReturnType<typeof createInstanceActions>;

/** What is known of a container the engine just made when inspect found nothing (removed at once). */
function stub(id: string, name: string): ContainerInfo {
  return { id, name, image: '', labels: {}, state: 'exited', exitCode: null, oomKilled: false, error: null, startedAt: null, finishedAt: null, networks: {} };
}
