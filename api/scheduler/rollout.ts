// Settles an app's running deployment from observed state: succeeded when the release runs in
// full and the live edges serve its endpoints, failed at once when one of its instances exits or a
// live edge cannot serve one of its endpoints (or at the deadline). While a live edge has not yet
// reported the new endpoints, the previous release's instances are kept (holdPrevious), so a
// failure leaves it serving without a gap. With no live edge at all there is no edge to wait
// for: it succeeds and says its endpoints are not served (docs/api.md, "What is served"). A
// failure puts the previous release back, so it keeps serving, and records exactly why. Each
// outcome is one fenced transaction with its events, and applies only while the deployment is
// still running (a deploy that superseded it meanwhile wins).
import type { Logger } from 'pino';
import { and, desc, eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { apps, deployments, endpoints, releases, type App, type Deployment, type Instance } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import { conflictsOf, portInUse, releaseUnusedPorts } from '../port-claims.js';
import { bindHint, readEdges, servedState, type Served } from '../served-state.js';
import type { ContainerInfo, Runtime } from '../runtime/runtime.js';
import { describeEndpointChanges, syncEndpoints } from '../endpoint-sync.js';
import { resolveBindings } from '../endpoint-bindings.js';
import { addressesOf } from '../ip-service.js';
import type { AppLeases, Lease } from './app-leases.js';
import { describeExit } from './exit-reason.js';
import { countsByProcess, desiredCounts } from '../desired-counts.js';
import { isReady, nextReadyAt } from './instance-ready.js';

export interface SettleInput {
  db: Db;
  leases: AppLeases;
  lease: Lease;
  runtime: Runtime;
  log: Logger;
  app: App;
  instances: Instance[];
  containers: Map<string, ContainerInfo>;
  now: Date;
}

export interface SettleResult {
  /** Set when the rollout failed and the app went back to this release (null: to none). */
  revertedTo?: string | null;
  /**
   * The rollout goes on, and a live edge has not reported its endpoints at their new settings:
   * keep the previous release's instances until it does (plan's holdPrevious).
   */
  holdPrevious?: boolean;
  /** The rollout still runs: look again by its deadline, which nothing else may trigger. */
  deadline?: Date;
  /** The rollout still runs: an instance without a check counts ready at this time if it keeps running. */
  readyAt?: Date;
}

export async function settleDeployment(input: SettleInput): Promise<SettleResult> {
  const { db, app, now } = input;
  const [dep] = await db
    .select()
    .from(deployments)
    .where(and(eq(deployments.appId, app.id), eq(deployments.state, 'running')))
    .orderBy(desc(deployments.createdAt))
    .limit(1);
  if (!dep) return {};
  const [release] = await db.select().from(releases).where(eq(releases.id, dep.releaseId));
  if (!release) return {};
  const manifest = release.manifest as Manifest;
  const mine = input.instances.filter((r) => r.releaseId === dep.releaseId);

  // An instance of the new release that stopped on its own fails the rollout at once.
  const dead = mine.find((r) => {
    if (r.createdAt < dep.createdAt) return false;
    const c = input.containers.get(r.id);
    if (r.desiredState === 'running') return !c || c.state === 'exited' || c.state === 'dead';
    return r.observedState === 'failed' || r.observedState === 'exited';
  });
  if (dead) {
    const info = dead.containerId ? await input.runtime.inspect(dead.containerId) : null;
    const why = dead.observedState === 'failed' || dead.observedState === 'exited' ? null : describeExit(dead.id, info);
    const message = why?.message ?? dead.lastReason ?? `${dead.id} stopped`;
    const lastLogs = info ? (await input.runtime.logs(info.id, 20).catch(() => [])).map((l) => l.line) : [];
    const detail = lastLogs.length ? `${message}; last log lines:\n  ${lastLogs.join('\n  ')}` : message;
    return fail(input, dep, release.version, detail, {
      instanceId: dead.id,
      exitCode: why?.exitCode ?? dead.lastExitCode,
      oom: why?.oom ?? dead.lastOom,
      reason: why?.reason ?? 'exited',
      lastLogs,
    });
  }

  // An endpoint a live edge cannot serve (its port is taken on that host, say) fails the rollout
  // now: waiting would not bind it, and the previous release should serve meanwhile.
  const eps = await db.select().from(endpoints).where(eq(endpoints.appId, app.id));
  const seen = eps.length ? await readEdges(db) : [];
  const served = eps.map((e) => ({ port: e.port, id: e.id, served: servedState(e, seen) })).sort((a, b) => a.port - b.port);
  const failedEndpoint = served.find((e) => e.served.state === 'failed');
  if (failedEndpoint) {
    const { served: s, port } = failedEndpoint;
    // The revert takes the endpoint out of the snapshot, so the edge stops retrying its bind.
    const hint = bindHint(new Set(s.edges.flatMap((e) => e.failures.map((f) => f.code))), false);
    return fail(input, dep, release.version, `endpoint :${port} cannot be served: ${s.reason}; ${hint}`, {
      reason: 'endpoint-failed',
      endpoint: failedEndpoint.id,
      port,
      edges: s.edges.filter((e) => e.state === 'failed'),
    });
  }
  const pending = served.filter((e) => e.served.state === 'pending');
  const unserved = served.filter((e) => e.served.state === 'no-edge');
  const holdPrevious = pending.length > 0;

  // "running" in progress counts instances that are ready: running and passing their check.
  const desired = countsByProcess(desiredCounts(app, manifest, release.version));
  const running: Record<string, number> = {};
  for (const process of Object.keys(manifest.processes)) {
    running[process] = mine.filter((r) => r.process === process && r.desiredState === 'running' && isReady(r, input.containers.get(r.id), now)).length;
  }
  const others = input.instances.filter((r) => r.releaseId !== dep.releaseId && r.desiredState === 'running').length;
  const ready = Object.keys(desired).every((p) => (running[p] ?? 0) >= (desired[p] ?? 0));
  const complete = ready && others === 0;

  if (complete && pending.length === 0) {
    const note = unserved.length ? `; not served: ${unserved[0]?.served.reason} (${unserved.map((e) => `:${e.port}`).join(' ')})` : '';
    const done = await input.leases.fenced(input.lease, async (t) => {
      const [updated] = await t.tx
        .update(deployments)
        .set({ state: 'succeeded', progress: { desired, running }, finishedAt: now, updatedAt: now })
        .where(and(eq(deployments.id, dep.id), eq(deployments.state, 'running')))
        .returning();
      if (!updated) return false;
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: dep.id,
        type: 'deploy.succeeded',
        reason: 'rolled-out',
        message: `release v${release.version} runs: ${summary(running)}${note}`,
        data: { releaseId: release.id, version: release.version, running, served: servedSummary(served) },
      });
      return true;
    });
    if (done) input.log.info({ deployment: dep.id, release: release.version }, 'deployment succeeded');
    return {};
  }
  if (now > dep.deadline) {
    const seconds = Math.round((dep.deadline.getTime() - dep.createdAt.getTime()) / 1000);
    const failing = mine.filter((r) => r.desiredState === 'running' && r.health === 'starting' && r.healthOutput);
    // The implicit readiness check's output names its instance already.
    const checks = failing.map((r) => (r.healthOutput?.includes(r.id) ? (r.healthOutput as string) : `${r.id}: ${r.healthOutput}`));
    if (ready && holdPrevious) {
      // Everything runs, and a live edge still does not serve it at the new settings (so the
      // previous release was kept: it serves on).
      const waiting = pending.map((e) => `:${e.port}: ${e.served.reason}`).join('; ');
      const message = `the rollout of v${release.version} timed out after ${seconds} s with ${summary(running)} ready, but the edge does not serve ${waiting}`;
      return fail(input, dep, release.version, message, { reason: 'not-served', running, desired, pending: pending.map((e) => ({ port: e.port, reason: e.served.reason })) });
    }
    const message =
      `the rollout of v${release.version} timed out after ${seconds} s with ${summary(running)} of ${summary(desired)} ready` +
      (checks.length ? `; failing checks:\n  ${checks.join('\n  ')}` : '');
    const reason = checks.length === 0 ? 'timeout' : checks.every((c) => c.startsWith('nothing listens')) ? 'not-listening' : 'check-failed';
    return fail(input, dep, release.version, message, { reason, running, desired, checks });
  }
  if (JSON.stringify(dep.progress) !== JSON.stringify({ desired, running })) {
    await input.leases.fenced(input.lease, async (t) => {
      const [updated] = await t.tx
        .update(deployments)
        .set({ progress: { desired, running }, updatedAt: now })
        .where(and(eq(deployments.id, dep.id), eq(deployments.state, 'running')))
        .returning({ id: deployments.id });
      if (!updated) return;
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: dep.id,
        type: 'deploy.progressed',
        reason: 'instances-running',
        message: `release v${release.version}: ${summary(running)} of ${summary(desired)} ready`,
        data: { desired, running },
      });
    });
  }
  const waiting = mine.filter((r) => r.desiredState === 'running').map((r) => ({ row: r, container: input.containers.get(r.id) }));
  return { holdPrevious, deadline: dep.deadline, readyAt: nextReadyAt(waiting, now) ?? undefined };
}

async function fail(input: SettleInput, dep: Deployment, version: number, message: string, failure: Record<string, unknown>): Promise<SettleResult> {
  const { db, app, now } = input;
  const previous = dep.previousReleaseId;
  const [prev] = previous ? await db.select().from(releases).where(eq(releases.id, previous)) : [];
  const kept = prev ? `; v${prev.version} keeps serving` : '';
  // A port the previous release served may have gone to another app during the rollout: the rest
  // is restored, that endpoint is not (claims refuse it), and an event says why.
  const prevManifest = prev ? (prev.manifest as Manifest) : null;
  const own = prevManifest ? await addressesOf(db, app.id) : {};
  const taken = prevManifest
    ? await conflictsOf(db, app.id, prevManifest.endpoints.map((e) => ({ port: e.port, access: e.access, tls: e.tls, sni: e.sni, sniDefault: e.sni_default, bindings: resolveBindings(e, own).bindings })))
    : [];
  const restored = prevManifest ? { ...prevManifest, endpoints: prevManifest.endpoints.filter((e) => !taken.some((c) => c.wanted.port === e.port)) } : null;
  const reverted = await input.leases.fenced(input.lease, async (t) => {
    // The app row first, as a deploy locks it: the two never wait on each other in a circle.
    await t.tx.select({ id: apps.id }).from(apps).where(eq(apps.id, app.id)).for('no key update');
    const [updated] = await t.tx
      .update(deployments)
      .set({ state: 'failed', failureReason: message, failure, finishedAt: now, updatedAt: now })
      .where(and(eq(deployments.id, dep.id), eq(deployments.state, 'running')))
      .returning({ id: deployments.id });
    // Superseded meanwhile: the newer deploy decides what runs.
    if (!updated) return false;
    await t.tx.update(apps).set({ currentReleaseId: prev?.id ?? null, updatedAt: now }).where(eq(apps.id, app.id));
    const changes = await syncEndpoints(t.tx, app.id, restored);
    for (const c of taken) {
      const refused = portInUse(c, { orgId: app.orgId, appId: null });
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: dep.id,
        type: 'endpoint.not_restored',
        reason: 'port-in-use',
        message: `endpoint :${c.wanted.port} of v${prev?.version} was not restored: ${refused.message}`,
        data: { port: c.wanted.port, details: refused.details },
      });
    }
    if (changes.length) {
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: dep.id,
        type: 'endpoint.changed',
        reason: 'rollout-failed',
        message: `endpoints restored to ${prev ? `v${prev.version}` : 'none'}: ${describeEndpointChanges(changes)}`,
        data: { changes },
      });
    }
    await t.record({
      orgId: app.orgId,
      appId: app.id,
      deploymentId: dep.id,
      type: 'deploy.failed',
      reason: String(failure.reason ?? 'failed'),
      message: `deploy of v${version} failed: ${message}${kept}`,
      data: { ...failure, previousReleaseId: prev?.id ?? null },
    });
    return true;
  });
  if (!reverted) return {};
  await releaseUnusedPorts(db, input.log);
  input.log.warn({ deployment: dep.id, release: version, reason: failure.reason }, 'deployment failed');
  return { revertedTo: prev?.id ?? null };
}

/** Per endpoint, what the edges did when the rollout ended, for the deploy.succeeded event. */
function servedSummary(served: { port: number; served: Served }[]): Record<string, string> {
  return Object.fromEntries(served.map((e) => [String(e.port), e.served.state]));
}

function summary(counts: Record<string, number>): string {
  return Object.entries(counts).map(([p, n]) => `${p}=${n}`).join(' ') || 'none';
}
