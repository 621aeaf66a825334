// Moves a volume with its instance from one storage root to another (`pier volumes move`): two
// roots of one machine, or on a swarm two nodes' agents (`node:ADDRESS`; the writer's service is
// scaled to zero for the cutover, and the swarm reconciler pins it to the target node after the
// switch). The data goes as a stream from the source driver to the target's
// (api/volumes/volume-transfer.ts). The roots may be of one driver or not: between a btrfs and a
// dir root neither's own stream serves, and each copy goes as the portable snapshot file, whole
// (transfer `archive`; same driver: `btrfs-send` or `tar`). Phases, each written to `volume_moves`
// before it starts:
//   precopy  read-only snapshot `<move>-pre` of the running volume, sent whole to the target;
//            btrfs: then a catch-up round (`<move>-catchup`, sent as a delta against `-pre`), so
//            the final delta holds only what was written since; then both roots are flushed to
//            disk (a receive in the downtime would otherwise first write out the pre-copy's
//            dirty gigabyte: 1.5 s measured, against 20 ms once flushed); then, under the app's
//            reconcile lock (btrfs: held from here to the target's start), the target instance is
//            made ahead: its row and its container, created and not started, with the target's
//            Docker volume mounted no-copy and the process's other volumes where they are
//            (api/scheduler/prepared-start.ts; the id is recorded as volume_moves.target_instance_id
//            first, so a rollback finds what to remove). Between drivers the pre-copy cannot
//            shorten the final copy: it proves the target takes the volume before anything stops;
//   cutover  under the app's reconcile lock (held to the switch), the instance is marked stopped
//            and stopped; downtime starts; the next phase begins at its exit (`die`), Docker's
//            tear-down of it runs beside them; the pass after the switch drains it at the edge;
//   final    snapshot `<move>-final` of the stopped volume: stop first, then snapshot (a paused
//            container is unfrozen to take SIGTERM and goes on writing);
//   send     the delta (btrfs send -p catchup); dir, and between drivers: the whole snapshot again;
//   verify   btrfs: the target's received UUID is the source snapshot's UUID (set only once the
//            stream was whole) and the sizes agree; dir: tree sha256; between drivers: the tree
//            sha256 and bytes the target found after extracting, against the source snapshot's;
//   switched the target volume is made from the received snapshot and the row points at it (and
//            at the target instance, when made ahead, with the process's other volumes: the mover
//            starts it, still under the lock, and the next pass binds it; otherwise the reconciler
//            starts one there); downtime ends when its container runs (`docker start` returned;
//            or seen by a poll);
//   done     the source volume is made read-only and kept until retain_until (the keeper purges).
// Any failure before `switched` rolls back: the target's copies go (and the target instance made
// ahead: container, Docker volume, row), the volume is `ready` on the source again, and the
// reconciler starts its instance there. A server that died mid-move does
// the same at start (`recover`), or finishes a move that had switched.
import { and, asc, eq, inArray, isNull, lte } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { AdvisoryLocks, HeldLock } from '../../db/advisory-locks.js';
import type { Db } from '../../db/database.js';
import { apps, instances, volumeMoves, volumes, type MovePhase, type Volume, type VolumeMove } from '../../db/schema/index.js';
import type { AuthContext } from '../auth.js';
import { newId } from '../ids.js';
import { PierError } from '../pier-error.js';
import type { Runtime } from '../runtime/runtime.js';
import type { PreparedStarts } from '../scheduler/prepared-start.js';
import type { Transactions } from '../transactions.js';
import type { MoveFault } from './move-fault.js';
import { nodeRootAddress } from './agent-roots.js';
import { dockerVolumeName } from './docker-volume-name.js';
import type { VolumeService } from './volume-service.js';
import { createMoveTargets } from './move-target.js';
import { transferArchive, transferSnapshot, type ArchiveTransfer } from './volume-transfer.js';

export { parseMoveFault, type MoveFault } from './move-fault.js';

export interface VolumeMoverOptions {
  db: Db;
  transactions: Transactions;
  runtime: Runtime;
  service: VolumeService;
  log: Logger;
  enqueue: (appId: string) => void;
  /** The app's routes changed outside a reconcile pass (its holder leaves the edge at the cutover). */
  onRoutesChanged?: ((appId: string) => void) | undefined;
  /** Moves run under a lock each, so that a second server's `recover` leaves a running one alone. */
  locks?: AdvisoryLocks | undefined;
  /** How long the source is kept read-only after a move (default 24 h). */
  retentionMs?: number | undefined;
  /** How long to wait for the instance to run on the target before answering (default 60 s). */
  startWaitMs?: number | undefined;
  fault?: MoveFault | undefined;
  /**
   * Makes the target instance before the cutover (api/scheduler/prepared-start.ts), so that only
   * its start is left in the downtime; without it, the reconciler starts it after the switch.
   */
  prepared?: { starts: PreparedStarts; installationId: string } | undefined;
}

/** A step of the downtime: ms since the cutover began (the instance was marked to stop). */
export interface MoveStep {
  step: string;
  ms: number;
}

/** What the `volume.moved` event says of how the move went. */
interface MoveTiming {
  phases: { phase: MovePhase; ms: number }[];
  steps: MoveStep[];
  /** The target instance was made before the cutover and started by the move (else by the reconciler). */
  madeAhead: boolean;
  /** How the data went: `btrfs-send` (a full send, then deltas), `tar` (dir: whole each time) or `archive` (between drivers: the export file, whole each time). */
  transfer: Transfer;
}

type Transfer = 'btrfs-send' | 'tar' | 'archive';

const TRANSFERS: Record<Transfer, string> = {
  'btrfs-send': 'btrfs send, then deltas',
  tar: 'a tar of it all, twice: dir has no delta',
  archive: 'as a snapshot file, whole twice: there is no delta between btrfs and dir',
};

export interface MoveResult {
  move: VolumeMove;
  volume: Volume;
  phases: { phase: MovePhase; ms: number }[];
  /** The downtime step by step: drained, exited, final snapshot, delta received, verified, switched, running. */
  steps: MoveStep[];
}

const PRE = (id: string) => `${id}-pre`;
const CATCHUP = (id: string) => `${id}-catchup`;
const FINAL = (id: string) => `${id}-final`;

export function createVolumeMover(options: VolumeMoverOptions) {
  const { db, transactions, runtime, service, log } = options;
  const { liveHolder, stopHolder, stopUnnamedWriter, serial, findVolume, now } = service.internals;
  const roots = service.roots;
  const retention = options.retentionMs ?? 24 * 3_600_000;
  const targets = createMoveTargets({ db, runtime, roots, log, prepared: options.prepared });
  // One shot: the first move that reaches it meets the fault, later ones do not.
  let fault = options.fault;

  async function setPhase(move: VolumeMove, phase: MovePhase, extra: Partial<VolumeMove> = {}): Promise<void> {
    await db.update(volumeMoves).set({ phase, ...extra, updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
    move.phase = phase;
    Object.assign(move, extra);
    const f = fault;
    if (f && f.kind !== 'truncate' && f.phase === phase) {
      fault = undefined;
      if (f.kind === 'hold') {
        log.warn({ move: move.id, phase }, 'PIER_VOLUME_MOVE_FAULT: the move holds here (as if the server had died)');
        await new Promise(() => undefined);
      }
      throw new PierError('E_VOLUME_MOVE_FAULT', `injected failure at phase ${phase} (PIER_VOLUME_MOVE_FAULT)`, { status: 500 });
    }
  }

  /** Undoes a move that had not switched: the source is as it was and ready; the instance starts there again. */
  async function rollBack(move: VolumeMove, err: unknown, why: string): Promise<void> {
    const from = roots.get(move.fromRoot);
    const to = roots.has(move.toRoot) ? roots.get(move.toRoot) : null;
    const message = err instanceof Error ? err.message : String(err);
    const target = move.targetInstanceId;
    for (const step of [
      // The target instance made before the cutover: its container, then the Docker volume made for it.
      () => (target ? options.prepared?.starts.discard(target) : undefined),
      () => (target ? runtime.removeVolume(dockerVolumeName(move.volumeId, move.toRoot)) : undefined),
      () => to?.removeSnapshot(FINAL(move.id)),
      () => to?.removeSnapshot(CATCHUP(move.id)),
      () => to?.removeSnapshot(PRE(move.id)),
      () => to?.remove(move.volumeId),
      () => from.removeSnapshot(FINAL(move.id)),
      () => from.removeSnapshot(CATCHUP(move.id)),
      () => from.removeSnapshot(PRE(move.id)),
    ]) {
      await Promise.resolve(step()).catch((e: unknown) => log.warn({ err: e, move: move.id }, 'move clean-up step failed; left for a later look'));
    }
    const [app] = await db.select().from(apps).where(eq(apps.id, move.appId));
    await transactions.run(async (t) => {
      await t.tx.update(volumes).set({ state: 'ready', updatedAt: new Date() }).where(and(eq(volumes.id, move.volumeId), eq(volumes.state, 'moving')));
      // Never started, it leaves no trace: no pass can start it once the volume is ready again.
      if (target) await t.tx.delete(instances).where(and(eq(instances.id, target), isNull(instances.containerId)));
      await t.tx.update(volumeMoves).set({ state: 'rolled-back', error: message, updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
      if (app) {
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'volume.move_failed',
          reason: move.phase,
          message: `move ${move.id} of volume ${move.volumeId} to root ${move.toRoot} failed at ${move.phase} (${why}): ${message}; rolled back, the volume stays on ${move.fromRoot}`,
          data: { moveId: move.id, volumeId: move.volumeId, phase: move.phase, from: move.fromRoot, to: move.toRoot, error: message },
        });
      }
    });
    options.enqueue(move.appId);
    log.warn({ move: move.id, phase: move.phase, err }, 'volume move rolled back');
  }

  /** After the switch: the source is frozen and kept until retain_until; the move is recorded as done. */
  async function finish(move: VolumeMove, downtimeMs: number | null, timing: MoveTiming | null = null): Promise<void> {
    await roots
      .get(move.fromRoot)
      .freeze(move.volumeId)
      .catch((err: unknown) => log.warn({ err, move: move.id }, 'source volume not made read-only'));
    const retainUntil = new Date(now() + retention);
    const [app] = await db.select().from(apps).where(eq(apps.id, move.appId));
    await transactions.run(async (t) => {
      await t.tx.update(volumeMoves).set({ phase: 'done', state: 'moved', downtimeMs, retainUntil, updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
      if (app) {
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'volume.moved',
          reason: 'moved',
          message: `volume ${move.volumeId} moved from root ${move.fromRoot} to ${move.toRoot}: ${move.bytesMoved} bytes sent${timing ? ` (${TRANSFERS[timing.transfer]}${timing.madeAhead ? '; the target instance made ahead' : ''})` : ''}, downtime ${downtimeMs === null ? 'unknown' : `${downtimeMs} ms`}; the source is kept read-only until ${retainUntil.toISOString()}`,
          data: { moveId: move.id, volumeId: move.volumeId, from: move.fromRoot, to: move.toRoot, bytesMoved: move.bytesMoved, downtimeMs, ...(timing ?? {}) },
        });
      }
    });
    Object.assign(move, { phase: 'done', state: 'moved', downtimeMs, retainUntil });
  }

  /** Waits (bounded) for a container running on the moved volume; returns when it was seen, or null. */
  async function waitForHolder(volumeId: string, stoppedInstance: string | null): Promise<number | null> {
    const until = Date.now() + (options.startWaitMs ?? 60_000);
    while (Date.now() < until) {
      const [v] = await db.select().from(volumes).where(eq(volumes.id, volumeId));
      if (!v) return null;
      if (v.attachedInstanceId && v.attachedInstanceId !== stoppedInstance) {
        const holder = await liveHolder(v);
        if (holder?.containerId) return Date.now();
      }
      if (!stoppedInstance && !v.attachedInstanceId) return Date.now();
      await new Promise((r) => setTimeout(r, 50));
    }
    return null;
  }

  /**
   * Stops whatever holds the volume now, before the final snapshot; says whether something did.
   * The caller holds the app's reconcile lock (taken, waiting for a pass that runs, before the
   * downtime) from here to the switch: no pass can start a container meanwhile, so the container
   * read under the lock is the only one, and the stop need not wait for a pass of its own (which
   * put a whole docker stop and its bookkeeping into the downtime). The row is read again (an
   * attach that won the race with `moving` names its instance there, and no attach succeeds once
   * the volume is moving). The pass that follows the switch records the stop, updates the routes
   * and starts the instance on the target, side by side.
   */
  async function quiesce(move: VolumeMove, volume: Volume, at: (step: string) => void, stops: Promise<void>[], begin: () => void): Promise<boolean> {
    let held = false;
    for (let round = 0; round < 3; round++) {
      const [current] = await db.select().from(volumes).where(eq(volumes.id, volume.id));
      const instanceId = current?.attachedInstanceId ?? null;
      if (!instanceId) {
        // On a swarm a task can write before a pass has named it the holder: its group is stopped too.
        const [app] = await db.select().from(apps).where(eq(apps.id, move.appId));
        if (app && (await stopUnnamedWriter(app, current ?? volume, round === 0 ? begin : () => undefined))) {
          held = true;
          at('exited');
        }
        return held;
      }
      if (round === 0) begin();
      const stamp = new Date();
      const containerId = await transactions.run(async (t) => {
        if (!move.instanceId) await t.tx.update(volumeMoves).set({ instanceId }).where(eq(volumeMoves.id, move.id));
        await t.tx
          .update(instances)
          .set({ desiredState: 'stopped', drainUntil: stamp, lastReason: `volume ${volume.name} moves to root ${move.toRoot}`, updatedAt: stamp })
          .where(and(eq(instances.id, instanceId), eq(instances.desiredState, 'running')));
        const [row] = await t.tx.select({ containerId: instances.containerId }).from(instances).where(eq(instances.id, instanceId));
        return row?.containerId ?? null;
      });
      // The edge stops sending new connections to it now, not at the pass after the switch.
      options.onRoutesChanged?.(move.appId);
      at('drained');
      move.instanceId ??= instanceId;
      if (containerId) {
        held = true;
        const { exited, stopped } = stopUntilExit(containerId, instanceId);
        const done = stopped.then(() => at('stopped (Docker done)'));
        done.catch(() => undefined); // awaited after the switch (a failed move never gets there)
        stops.push(done);
        await exited;
        at('exited');
      }
      const [after] = await db.select({ attached: volumes.attachedInstanceId }).from(volumes).where(eq(volumes.id, volume.id));
      if ((after?.attached ?? null) === instanceId) return held;
    }
    throw new PierError('E_VOLUME_BUSY', `volume ${volume.name} kept being attached to new instances`, { status: 409, hint: 'try again; nothing was switched' });
  }

  /**
   * Stops a container; `exited` resolves at its `die` event, when its processes are gone (so
   * nothing writes the volume any more), while Docker's tear-down (network, mounts: 0.45 s
   * measured here) goes on beside the final snapshot and send. `stopped` settles when Docker has
   * stopped it (or the stop failed); the move waits for it before it is done (the switch does
   * not: it detaches the exited holder). A `die` missed (the subscription came late, or the
   * event stream failed) only means waiting for `stopped`.
   */
  function stopUntilExit(containerId: string, instanceId: string): { exited: Promise<void>; stopped: Promise<void> } {
    const ac = new AbortController();
    const died = (async () => {
      for await (const ev of runtime.events(ac.signal)) {
        if (ev.type === 'die' && (ev.containerId === containerId || ev.containerId.startsWith(containerId) || containerId.startsWith(ev.containerId))) return;
      }
      await new Promise(() => undefined); // the stream ended without it: `stopped` decides
    })().catch(() => new Promise<void>(() => undefined));
    // On a swarm the instance names its service, which is scaled to zero (Swarm would restart a stopped container).
    const stopped = stopHolder({ containerId, instanceId });
    stopped.catch(() => undefined); // awaited before the switch; not an unhandled rejection meanwhile
    const exited = Promise.race([died, stopped]).finally(() => ac.abort());
    return { exited, stopped };
  }

  /** The app's reconcile lock, waited for (bounded): no pass of the app runs while it is held. Null without locks. */
  async function reconcileLock(appId: string): Promise<HeldLock | null> {
    if (!options.locks) return null;
    const until = Date.now() + 60_000;
    for (;;) {
      const lock = await options.locks.tryLock(`pier:reconcile:${appId}`);
      if (lock) return lock;
      if (Date.now() > until) throw new PierError('E_VOLUME_BUSY', 'a deploy of the app kept running', { status: 409, hint: 'try again once it is done; nothing was switched' });
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** How a move's data goes: between a btrfs and a dir root neither's own stream serves, so as the export file. */
  function transferOf(move: VolumeMove): Transfer {
    const from = roots.get(move.fromRoot);
    const to = roots.get(move.toRoot);
    return from.kind !== to.kind ? 'archive' : from.kind === 'btrfs' ? 'btrfs-send' : 'tar';
  }

  /** The phases' durations: `lap(phase)` records the time since the last lap. */
  function phaseClock(): { phases: { phase: MovePhase; ms: number }[]; lap: (phase: MovePhase) => void } {
    const phases: { phase: MovePhase; ms: number }[] = [];
    let mark = Date.now();
    return {
      phases,
      lap: (phase) => {
        phases.push({ phase, ms: Date.now() - mark });
        mark = Date.now();
      },
    };
  }

  /**
   * The pre-copy, while the instance runs: a read-only snapshot sent whole; on btrfs then a
   * catch-up round (sent as a delta), so the final delta holds only what was written since.
   * Between a btrfs and a dir root it goes as the portable file and cannot shorten the final copy
   * (there is no delta between them): it proves, before anything stops, that the target takes
   * the whole volume (room, permissions) and checks it there by tree hash.
   */
  async function copyWhileRunning(move: VolumeMove, volume: Volume, transfer: Transfer): Promise<{ bytes: number; parent: string | null }> {
    const from = roots.get(move.fromRoot);
    const to = roots.get(move.toRoot);
    await from.snapshot(volume.id, PRE(move.id));
    let bytes = transfer === 'archive' ? (await transferArchive(from, to, PRE(move.id), volume.name)).bytes : await transferSnapshot(from, to, PRE(move.id), null);
    if (transfer !== 'btrfs-send') return { bytes, parent: null };
    await from.snapshot(volume.id, CATCHUP(move.id));
    bytes += await transferSnapshot(from, to, CATCHUP(move.id), PRE(move.id));
    return { bytes, parent: CATCHUP(move.id) };
  }

  /** The final snapshot's copy (the phase `send`): a delta against `parent`, or whole (dir, and between drivers: the portable file). */
  async function sendFinal(move: VolumeMove, volume: Volume, transfer: Transfer, parent: string | null): Promise<{ bytes: number; archive: ArchiveTransfer | null }> {
    const from = roots.get(move.fromRoot);
    const to = roots.get(move.toRoot);
    await setPhase(move, 'send');
    const truncateAt = fault?.kind === 'truncate' ? fault.bytes : undefined;
    if (truncateAt !== undefined) fault = undefined;
    if (transfer === 'archive') {
      const archive = await transferArchive(from, to, FINAL(move.id), volume.name, { truncateAt });
      return { bytes: archive.bytes, archive };
    }
    return { bytes: await transferSnapshot(from, to, FINAL(move.id), parent, { truncateAt }), archive: null };
  }

  /**
   * Checks the final copy on the target (the caller has set the phase `verify`). btrfs: the
   * received UUID says which snapshot arrived, the size that all of it did. dir: the tree sha256
   * covers every byte already (and `du` counts directories differently across filesystems, so it
   * would refuse a sound copy between an ext4 and an xfs root). Between drivers: the tree the
   * target extracted (its sha256 and bytes) against the source's.
   */
  async function verifyFinal(move: VolumeMove, volume: Volume, archived: ArchiveTransfer | null): Promise<void> {
    const from = roots.get(move.fromRoot);
    const to = roots.get(move.toRoot);
    const [sent, got, sentBytes, gotBytes] = archived
      ? [archived.sent.sha256, archived.got.sha256, archived.sent.bytes, archived.got.bytes]
      : await Promise.all([
          from.fingerprint(FINAL(move.id)),
          to.receivedFingerprint(FINAL(move.id)),
          from.kind === 'btrfs' ? from.usage({ snapshot: FINAL(move.id) }) : 0,
          from.kind === 'btrfs' ? to.usage({ snapshot: FINAL(move.id) }).catch(() => -1) : 0,
        ]);
    if (!got || got !== sent || sentBytes !== gotBytes) {
      throw new PierError('E_VOLUME_MOVE_VERIFY', `the copy of volume ${volume.name} on root ${move.toRoot} does not match the source (${got ?? 'incomplete'} vs ${sent}; ${gotBytes} vs ${sentBytes} bytes)`, {
        status: 500,
        hint: 'nothing was switched; the volume stays where it was',
      });
    }
  }

  async function run(move: VolumeMove, volume: Volume, lock: HeldLock | null): Promise<MoveResult> {
    const from = roots.get(move.fromRoot);
    const to = roots.get(move.toRoot);
    const transfer = transferOf(move);
    const { phases, lap } = phaseClock();
    const steps: MoveStep[] = [];
    let cutoverStart = 0;
    const at = (step: string) => steps.push({ step, ms: Date.now() - cutoverStart });
    let downtimeStart: number | null = null;
    const stops: Promise<void>[] = [];
    let passLock: HeldLock | null = null;
    /** The target instance made before the cutover, if it was, and the process's other volumes it mounts where they are. */
    let target: string | null = null;
    let others: string[] = [];
    /** When `docker start` of it returned. */
    let startedTarget: number | null = null;
    const releasePassLock = async () => {
      const held = passLock;
      passLock = null;
      await held?.release().catch((err: unknown) => log.warn({ err, move: move.id }, 'reconcile lock release failed'));
    };
    try {
      await setPhase(move, 'precopy');
      const copied = await copyWhileRunning(move, volume, transfer);
      let bytes = copied.bytes;
      const parent = copied.parent;
      await Promise.all([from.flush(), to.flush()]);
      // Held to the switch (btrfs; to the target's start when it was made here): a pass run at the
      // old container's exit would wait out Docker's tear-down of it in its `docker stop`, and the
      // start on the target would queue behind it.
      passLock = await reconcileLock(move.appId);
      if (passLock && transfer === 'btrfs-send') {
        const made = await targets.prepare(move, volume).catch(async (err: unknown) => {
          // Not worth a failed move: the reconciler starts the instance after the switch instead.
          log.warn({ err, move: move.id }, 'target instance not made ahead; the reconciler starts it after the switch');
          await targets.discard(move);
          return null;
        });
        target = made?.id ?? null;
        others = made?.others ?? [];
      }
      lap('precopy');

      await setPhase(move, 'cutover', { bytesMoved: bytes });
      cutoverStart = Date.now();
      const begin = () => (cutoverStart = Date.now());
      if (await quiesce(move, volume, at, stops, begin)) downtimeStart = cutoverStart;
      lap('cutover');

      await setPhase(move, 'final');
      await from.snapshot(volume.id, FINAL(move.id));
      at('final snapshot');
      lap('final');
      // dir (and a move between drivers) sends the whole tree again, which can take minutes: the app's other instances must
      // not wait that long for a pass. Nothing unsafe can run meanwhile: the holder is stopped and
      // marked so, and no instance starts on a volume that is moving.
      if (transfer !== 'btrfs-send') await releasePassLock();

      const archived = await sendFinal(move, volume, transfer, parent);
      bytes += archived.bytes;
      at(archived.archive ? 'copy received' : 'delta received');
      lap('send');

      await setPhase(move, 'verify', { bytesMoved: bytes });
      await verifyFinal(move, volume, archived.archive);
      at('verified');
      await to.restore(FINAL(move.id), volume.id, { sizeLimitBytes: volume.sizeLimitBytes });
      at('target volume made');
      lap('verify');

      // The old holder is detached: its processes are gone (it exited) and its mount is the
      // source's, which no container gets again, so the start on the target need not wait for
      // Docker's tear-down of it (the attach would see it live until then).
      // The process's other volumes go to the target with it, each only if still held by the old
      // holder and ready; one that is not (a restore in place of it began) sends the target made
      // ahead away, and the reconciler starts the instance once all of them can be attached.
      const keep = target;
      const handed = await transactions.run(async (t) => {
        let ok = keep !== null;
        if (keep && others.length > 0) {
          const still = await t.tx
            .select({ id: volumes.id })
            .from(volumes)
            .where(and(inArray(volumes.id, others), eq(volumes.attachedInstanceId, move.instanceId ?? ''), eq(volumes.state, 'ready'), isNull(volumes.deletedAt)));
          ok = still.length === others.length;
          if (ok) await t.tx.update(volumes).set({ attachedInstanceId: keep, updatedAt: new Date() }).where(inArray(volumes.id, others));
        }
        await t.tx.update(volumes).set({ root: move.toRoot, state: 'ready', attachedInstanceId: ok ? keep : null, updatedAt: new Date() }).where(eq(volumes.id, volume.id));
        await t.tx.update(volumeMoves).set({ phase: 'switched', updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
        return ok;
      });
      if (target && !handed) {
        log.warn({ move: move.id, others }, "another volume of the process changed during the move; the target made ahead is dropped and the reconciler starts the instance");
        await targets.discard(move).catch((err: unknown) => log.warn({ err, move: move.id }, 'target made ahead not removed; the next pass removes its container'));
        target = null;
      }
      at('switched');
      move.phase = 'switched';
    } catch (err) {
      try {
        // Under the reconcile lock still: no pass sees the target instance half removed.
        await rollBack(move, err, 'error');
      } finally {
        await releasePassLock();
        await lock?.release();
      }
      options.enqueue(move.appId); // a pass tried under the lock looks again only later
      throw err;
    }
    try {
      if (target) startedTarget = await targets.start(move, target);
      // The next pass binds the started container to its row (or makes it, when it was not made
      // ahead or its start failed), records the old one's stop and updates the routes.
      await releasePassLock();
      options.enqueue(move.appId);
      const started = startedTarget ?? (await waitForHolder(volume.id, move.instanceId));
      if (started !== null) steps.push({ step: 'running on the target', ms: started - cutoverStart });
      await Promise.all(stops).catch((err: unknown) => log.warn({ err, move: move.id }, 'the old container exited but Docker did not finish stopping it'));
      steps.sort((a, b) => a.ms - b.ms);
      lap('switched');
      await finish(move, downtimeStart === null || started === null ? null : started - downtimeStart, { phases, steps, madeAhead: startedTarget !== null, transfer });
    } finally {
      await releasePassLock();
      await lock?.release();
    }
    const [row] = await db.select().from(volumes).where(eq(volumes.id, volume.id));
    log.info({ move: move.id, volume: volume.id, bytes: move.bytesMoved, downtimeMs: move.downtimeMs, phases, steps }, 'volume moved');
    return { move, volume: row as Volume, phases, steps };
  }

  /**
   * Moves several volumes of one process with one cutover (`pier volumes move --group`): each is
   * pre-copied while the process runs; then its instances are drained and stopped (on a swarm its
   * services are scaled to zero), a final snapshot of each is taken, sent and verified, and all
   * are switched in one transaction: a server that dies finds them all on the source (rolled back)
   * or all on the target (finished), never split. A failure of any rolls them all back. No target
   * is made ahead: the reconciler starts the instances on the target after the switch.
   */
  async function runGroup(items: { move: VolumeMove; volume: Volume; lock: HeldLock | null }[]): Promise<MoveResult[]> {
    const first = items[0]?.move as VolumeMove;
    const transfers = items.map(({ move }) => transferOf(move));
    const { phases, lap } = phaseClock();
    const steps: MoveStep[] = [];
    let cutoverStart = 0;
    let begun = false;
    const begin = () => {
      if (!begun) cutoverStart = Date.now();
      begun = true;
    };
    const at = (step: string) => steps.push({ step, ms: Date.now() - cutoverStart });
    let downtimeStart: number | null = null;
    const stops: Promise<void>[] = [];
    let passLock: HeldLock | null = null;
    const releasePassLock = async () => {
      const held = passLock;
      passLock = null;
      await held?.release().catch((err: unknown) => log.warn({ err, move: first.id }, 'reconcile lock release failed'));
    };
    const releaseAll = async () => {
      await releasePassLock();
      for (const { lock } of items) await lock?.release().catch(() => undefined);
    };
    const bytes = items.map(() => 0);
    const parents: (string | null)[] = items.map(() => null);
    try {
      for (const [i, { move, volume }] of items.entries()) {
        await setPhase(move, 'precopy');
        const copied = await copyWhileRunning(move, volume, transfers[i] as Transfer);
        bytes[i] = copied.bytes;
        parents[i] = copied.parent;
      }
      const used = [...new Set(items.flatMap(({ move }) => [move.fromRoot, move.toRoot]))];
      await Promise.all(used.map((name) => roots.get(name).flush()));
      passLock = await reconcileLock(first.appId);
      lap('precopy');

      for (const [i, { move }] of items.entries()) await setPhase(move, 'cutover', { bytesMoved: bytes[i] });
      cutoverStart = Date.now();
      // Each instance that holds volumes of the group is stopped once, all side by side (on a
      // swarm the first stop scales the process's services to zero, and the others find it so).
      const holders = await db.select({ id: volumes.id, holder: volumes.attachedInstanceId }).from(volumes).where(inArray(volumes.id, items.map((x) => x.volume.id)));
      const holderOf = new Map(holders.map((h) => [h.id, h.holder]));
      const stopping = new Map<string, Promise<boolean>>();
      const quiesced = await Promise.allSettled(
        items.map(async ({ move, volume }) => {
          const holder = holderOf.get(volume.id) ?? null;
          const same = holder === null ? undefined : stopping.get(holder);
          if (same && holder) {
            await same;
            move.instanceId ??= holder;
            await db.update(volumeMoves).set({ instanceId: holder }).where(eq(volumeMoves.id, move.id));
            return false;
          }
          const quiet = quiesce(move, volume, at, stops, begin);
          if (holder) stopping.set(holder, quiet);
          return quiet;
        }),
      );
      for (const q of quiesced) if (q.status === 'rejected') throw q.reason;
      if (quiesced.some((q) => q.status === 'fulfilled' && q.value)) downtimeStart = cutoverStart;
      lap('cutover');

      for (const { move, volume } of items) {
        await setPhase(move, 'final');
        await roots.get(move.fromRoot).snapshot(volume.id, FINAL(move.id));
      }
      at('final snapshots');
      lap('final');
      if (transfers.some((x) => x !== 'btrfs-send')) await releasePassLock();

      const archives: (ArchiveTransfer | null)[] = [];
      for (const [i, { move, volume }] of items.entries()) {
        const sent = await sendFinal(move, volume, transfers[i] as Transfer, parents[i] ?? null);
        bytes[i] = (bytes[i] ?? 0) + sent.bytes;
        archives.push(sent.archive);
      }
      at('copies received');
      lap('send');

      for (const [i, { move, volume }] of items.entries()) {
        await setPhase(move, 'verify', { bytesMoved: bytes[i] });
        await verifyFinal(move, volume, archives[i] ?? null);
        await roots.get(move.toRoot).restore(FINAL(move.id), volume.id, { sizeLimitBytes: volume.sizeLimitBytes });
      }
      at('verified, target volumes made');
      lap('verify');

      // All of them or none: a process's volumes are never left on two roots.
      await transactions.run(async (t) => {
        const stamp = new Date();
        await t.tx.update(volumes).set({ root: first.toRoot, state: 'ready', attachedInstanceId: null, updatedAt: stamp }).where(inArray(volumes.id, items.map((x) => x.volume.id)));
        await t.tx.update(volumeMoves).set({ phase: 'switched', updatedAt: stamp }).where(inArray(volumeMoves.id, items.map((x) => x.move.id)));
      });
      for (const { move } of items) move.phase = 'switched';
      at('switched');
    } catch (err) {
      try {
        for (const { move } of items) await rollBack(move, err, move.id === first.id || move.phase !== 'precopy' ? 'error' : 'another volume of the group failed');
      } finally {
        await releaseAll();
      }
      options.enqueue(first.appId);
      throw err;
    }
    const results: MoveResult[] = [];
    try {
      await releasePassLock();
      options.enqueue(first.appId);
      const started: (number | null)[] = [];
      for (const { move, volume } of items) started.push(await waitForHolder(volume.id, move.instanceId));
      const last = started.every((x) => x !== null) ? Math.max(...(started as number[])) : null;
      if (last !== null) steps.push({ step: 'running on the target', ms: last - cutoverStart });
      await Promise.all(stops).catch((err: unknown) => log.warn({ err, move: first.id }, 'the old container exited but Docker did not finish stopping it'));
      steps.sort((a, b) => a.ms - b.ms);
      lap('switched');
      for (const [i, { move, volume }] of items.entries()) {
        const up = started[i] ?? null;
        await finish(move, downtimeStart === null || up === null ? null : up - downtimeStart, { phases, steps, madeAhead: false, transfer: transfers[i] as Transfer });
        const [row] = await db.select().from(volumes).where(eq(volumes.id, volume.id));
        results.push({ move, volume: row as Volume, phases, steps });
      }
    } finally {
      await releaseAll();
    }
    log.info({ moves: items.map((x) => x.move.id), bytes: items.map((x) => x.move.bytesMoved), phases, steps }, 'volumes moved together');
    return results;
  }

  /** Removes what a finished move kept: the source volume (unless the volume lives there again) and the move's snapshots. */
  async function purgeOne(move: VolumeMove): Promise<void> {
    const [current] = await db.select().from(volumes).where(eq(volumes.id, move.volumeId));
    if (roots.has(move.fromRoot)) {
      const from = roots.get(move.fromRoot);
      if (!current || current.root !== move.fromRoot) {
        await runtime.removeVolume(dockerVolumeName(move.volumeId, move.fromRoot));
        await from.remove(move.volumeId);
      }
      await from.removeSnapshot(PRE(move.id));
      await from.removeSnapshot(CATCHUP(move.id));
      await from.removeSnapshot(FINAL(move.id));
    }
    if (roots.has(move.toRoot)) {
      await roots.get(move.toRoot).removeSnapshot(PRE(move.id));
      await roots.get(move.toRoot).removeSnapshot(CATCHUP(move.id));
      await roots.get(move.toRoot).removeSnapshot(FINAL(move.id));
    }
    await db.update(volumeMoves).set({ state: 'purged', updatedAt: new Date() }).where(eq(volumeMoves.id, move.id));
  }

  return {
    /**
     * Moves a volume; with `group`, every volume of its process with it (other `[[volumes]]`
     * entries, every slot of a per-instance one), with one cutover. The answer's `group` lists
     * each volume's move, the named one first.
     */
    async move(auth: AuthContext, appName: string, name: string, toRoot: string, moveOptions: { group?: boolean } = {}): Promise<MoveResult & { group: MoveResult[] }> {
      const app = await service.findApp(auth, appName, 'deploy');
      const volume = await findVolume(app, name);
      // Both roots are here (E_VOLUME_ROOT_UNKNOWN otherwise); of one driver or not (a move between
      // btrfs and dir sends the data as the portable file, whole: transferArchive).
      roots.get(toRoot);
      roots.get(volume.root);
      const siblings =
        volume.process === null
          ? [volume]
          : await db
              .select()
              .from(volumes)
              .where(and(eq(volumes.appId, app.id), eq(volumes.process, volume.process), isNull(volumes.deletedAt)))
              .orderBy(asc(volumes.name));
      // The named volume first; the process's others that are elsewhere follow it.
      const members = moveOptions.group ? [volume, ...siblings.filter((v) => v.id !== volume.id && v.root !== toRoot)] : [volume];
      if (volume.root === toRoot && members.length === 1) {
        throw new PierError('E_VOLUME_SAME_ROOT', `volume ${name}${moveOptions.group ? ' and the other volumes of its process are' : ' is'} on root ${toRoot} already`, { status: 400, hint: `pick another root: ${roots.names().join(', ')}` });
      }
      // On a swarm a process's tasks all run on the node of its volumes (api/scheduler/swarm-volumes.ts):
      // one of its volumes (another `[[volumes]]` entry, or another slot's) moved alone would leave
      // them on two nodes. They move together (`group`), or not at all.
      if (!moveOptions.group && siblings.length > 1 && nodeRootAddress(volume.root) !== null) {
        throw new PierError('E_VOLUME_MOVE_SPLIT', `volume ${name} is one of the ${siblings.length} volumes of process ${volume.process} (${siblings.map((v) => v.name).join(', ')}), whose tasks all run on its node; one of them cannot move alone`, {
          status: 409,
          hint: `move them together: pier volumes move --app ${app.name} ${name} --to ${toRoot} --group`,
        });
      }
      for (const v of members) roots.get(v.root);
      const group = members.filter((v) => v.root !== toRoot);
      // A move back onto the root a retained source is kept on supersedes that copy.
      const retained = await db.select().from(volumeMoves).where(and(inArray(volumeMoves.volumeId, group.map((v) => v.id)), eq(volumeMoves.state, 'moved')));
      for (const old of retained) if (old.fromRoot === toRoot) await purgeOne(old);
      const moves = await transactions.run(async (t) => {
        const made: VolumeMove[] = [];
        for (const v of group) {
          const [marked] = await t.tx.update(volumes).set({ state: 'moving', updatedAt: new Date() }).where(and(eq(volumes.id, v.id), eq(volumes.state, 'ready'))).returning();
          if (!marked) {
            const [now] = await t.tx.select({ state: volumes.state }).from(volumes).where(eq(volumes.id, v.id));
            throw now?.state === 'moving'
              ? new PierError('E_VOLUME_MOVING', `volume ${v.name} is being moved already`, { status: 409, hint: `wait for it (pier events --app ${app.name}); one move of a volume at a time` })
              : new PierError('E_VOLUME_BUSY', `volume ${v.name} is being ${now?.state ?? 'changed'}`, { status: 409, hint: 'wait for it to finish' });
          }
          const [row] = await t.tx.insert(volumeMoves).values({ id: newId('move'), appId: app.id, volumeId: v.id, fromRoot: v.root, toRoot, phase: 'precopy' }).returning();
          const together = group.length > 1 ? ` with the ${group.length - 1} other volume${group.length > 2 ? 's' : ''} of process ${v.process}` : '';
          await t.record({ orgId: app.orgId, appId: app.id, type: 'volume.moving', reason: 'move', message: `volume ${v.name} moves from root ${v.root} to ${toRoot}${together}`, data: { moveId: row?.id, volumeId: v.id, from: v.root, to: toRoot } });
          made.push(row as VolumeMove);
        }
        return made;
      });
      const locks = await Promise.all(moves.map((m) => (options.locks ? options.locks.tryLock(`pier:volume-move:${m.id}`) : null)));
      const items = group.map((v, i) => ({ move: moves[i] as VolumeMove, volume: { ...v, state: 'moving' as const }, lock: locks[i] ?? null }));
      // Serialised with each volume's other work, in one order (ids sorted): no two callers wait on each other.
      const ids = group.map((v) => v.id).sort();
      const inTurn = (at: number, fn: () => Promise<MoveResult[]>): Promise<MoveResult[]> => (at === ids.length ? fn() : serial(ids[at] as string, () => inTurn(at + 1, fn)));
      const results = await inTurn(0, async () => {
        if (items.length === 1) {
          const only = items[0] as (typeof items)[number];
          return [await run(only.move, only.volume, only.lock)];
        }
        return runGroup(items);
      });
      return { ...(results[0] as MoveResult), group: results };
    },

    /** At start: moves a dead server left behind are rolled back, or finished if they had switched. */
    async recover(): Promise<number> {
      const open = await db.select().from(volumeMoves).where(eq(volumeMoves.state, 'running'));
      for (const move of open) {
        const lock = options.locks ? await options.locks.tryLock(`pier:volume-move:${move.id}`) : null;
        if (options.locks && !lock) continue;
        try {
          if (move.phase === 'switched' || move.phase === 'done') {
            options.enqueue(move.appId);
            await finish(move, null);
          } else {
            // A target instance made ahead goes under the app's reconcile lock, as in a move.
            const passLock = move.targetInstanceId ? await reconcileLock(move.appId) : null;
            try {
              await rollBack(move, new Error('the server stopped during the move'), 'server restarted');
            } finally {
              await passLock?.release();
            }
            options.enqueue(move.appId);
          }
        } catch (err) {
          log.error({ err, move: move.id }, 'interrupted volume move not recovered; retrying at the next start');
        } finally {
          await lock?.release();
        }
      }
      return open.length;
    },

    /** For the keeper: sources past their retention are removed. */
    async purge(at: Date): Promise<string[]> {
      const due = await db.select().from(volumeMoves).where(and(eq(volumeMoves.state, 'moved'), lte(volumeMoves.retainUntil, at)));
      const done: string[] = [];
      for (const move of due) {
        try {
          await purgeOne(move);
          done.push(move.id);
        } catch (err) {
          log.error({ err, move: move.id }, 'moved volume source not purged; retrying next pass');
        }
      }
      return done;
    },
  };
}

export type VolumeMover = ReturnType<typeof createVolumeMover>;
