// Creating a deploy: validate the manifest, resolve the image to its digest, then in one
// transaction lock (or create) the app, write release N (or find the identical one) and a
// deployment, supersede the running one, point the app at the release and sync its endpoints and
// the ports they claim, with every event. The scheduler rolls it out once the transaction has
// committed. A refused or interrupted deploy leaves nothing behind, not even a new app: a port
// another app holds is refused by the database's constraints (port-claims.ts), so two deploys
// racing for one port cannot both win.
import { createHash } from 'node:crypto';
import { and, desc, eq, inArray, isNull, ne } from 'drizzle-orm';
import { pino, type Logger } from 'pino';
import type { Db } from '../db/database.js';
import { apps, deployments, releases, type App, type Deployment, type Environment, type Release, type ReleaseBuild } from '../db/schema/index.js';
import { appNotFound, findApp, requireScope, type AuthContext } from './auth.js';
import { uniqueViolation } from './database-errors.js';
import { DEFAULT_PREVIEW_PORTS, type PortRange } from './environment-config.js';
import { environmentManifest } from './environment-deploy.js';
import { declaredTtl, ensureEnvironment, type EnvironmentRequest } from './environment-service.js';
import { currentSecretVersions } from './secret-service.js';
import { environmentOf } from './environment-names.js';
import { countsByProcess, desiredCounts, overridesClearedBy } from './desired-counts.js';
import { resolveBindings } from './endpoint-bindings.js';
import { describeEndpointChanges, syncEndpoints } from './endpoint-sync.js';
import { addressesOf, ensureIpv6 } from './ip-service.js';
import type { IpPool } from './ip-pool.js';
import { newId } from './ids.js';
import type { Manifest } from './manifest.js';
import { isPierError, PierError } from './pier-error.js';
import { claimsOf, findConflicts, isClaimViolation, portInUse, releaseUnusedPorts } from './port-claims.js';
import { LABELS, type Runtime } from './runtime/runtime.js';
import type { Transactions, Txn } from './transactions.js';
import type { RegistryClient } from './registry/registry-client.js';
import type { RegistryGate } from './registry/registry-gate.js';
import { createVolumeSeeder, seedsRecord, type PreparedSeed, type VolumeSeeder } from './volume-seeds.js';

export interface DeployServiceOptions {
  db: Db;
  runtime: Runtime;
  transactions: Transactions;
  /** Asks the scheduler to reconcile the app (called after the commit). */
  enqueue: (appId: string) => void;
  /**
   * The app's endpoints changed (a deploy or rollback committed): the edge snapshot must follow
   * even when the rollout starts nothing (count = 0), or a live edge never reports them.
   */
  onRoutesChanged?: (appId: string) => void;
  /** The server's address pools: with an IPv6 one, each app gets its own IPv6 on its first deploy. */
  ipPools?: IpPool[];
  /** For what goes wrong after a commit (tidying unused ports); silent without one. */
  log?: Logger;
  /**
   * Pier's registry, when it has one: a release that pins one of its images checks that the
   * image is still there (garbage collection may have deleted it) while holding the gate shared,
   * so a collection cannot delete it between the check and the commit.
   */
  registryImages?: { host: string; gate: RegistryGate; client: Pick<RegistryClient, 'manifestDigest'> } | undefined;
  /** What the runtime cannot run (e.g. volumes on a swarm): the error a deploy of it gets, or null. */
  refuse?: ((manifest: Manifest) => PierError | null) | undefined;
  /** The ports previews get on the shared addresses (api/environment-deploy.ts has the default). */
  previewPorts?: PortRange | undefined;
  /** Makes the volumes an `[env.*]` override seeds from a snapshot (api/volume-seeds.ts); without one, seeding is refused. */
  seeder?: VolumeSeeder | undefined;
}

export interface DeployResult {
  app: App;
  release: Release;
  deployment: Deployment;
  /** False when this exact manifest and digest were already deployed: nothing new was started. */
  created: boolean;
  /** True when the manifest's counts replaced `pier scale` counts (the app scales even when nothing new was created). */
  rescaled: boolean;
  /** The environment deployed to (a deploy made it on first use). */
  environment?: Environment | undefined;
}

export function createDeployService(options: DeployServiceOptions) {
  const { db, runtime, transactions } = options;
  const log = options.log ?? pino({ level: 'silent' });
  const seeder = options.seeder ?? createVolumeSeeder({ db, nodeId: '', log });

  /**
   * Runs FN (which writes a release pinning REFERENCE) with the registry gate held shared, after
   * checking that the registry still has the image. Other images: FN alone.
   */
  async function withRegistryImage<T>(reference: string, version: number | null, appName: string, fn: () => Promise<T>): Promise<T> {
    const reg = options.registryImages;
    const at = reference.indexOf('@sha256:');
    if (!reg || !reference.startsWith(`${reg.host}/`) || at < 0) return fn();
    return reg.gate.shared(async () => {
      const repo = reference.slice(reg.host.length + 1, at);
      const digest = reference.slice(at + 1);
      if ((await reg.client.manifestDigest(repo, digest)) === null) {
        const which = version === null ? `image ${reference}` : `the image of v${version} (${reference})`;
        throw new PierError('E_IMAGE_COLLECTED', `${which} was garbage-collected from Pier's registry: it is past the images Pier keeps for ${appName}`, {
          status: 410,
          hint:
            version === null
              ? 'build it again: `pier deploy -c pier.toml` (the same context gives the same digest)'
              : `check out the source of v${version} and \`pier deploy -c pier.toml\` (the same context gives the same digest), or roll back to a newer release; to keep more images, start pier server with a higher --registry-keep`,
          details: { image: reference, version },
        });
      }
      return fn();
    });
  }

  async function deployImage(auth: AuthContext, manifest: Manifest, description: string, built: string | undefined, reference: string, request: EnvironmentRequest = {}): Promise<DeployResult> {
    // Before the transaction: resolving may pull, and a transaction should not wait on the engine.
    const image = await runtime.resolveImage(reference, 'missing');
    const imageDigest = image.repoDigest ?? image.id;
    const build: ReleaseBuild | null =
      built && manifest.build
        ? {
            contextHash: image.labels?.[LABELS.buildContext] ?? null,
            dockerfile: manifest.build.dockerfile,
            target: manifest.build.target ?? null,
            argKeys: Object.keys(manifest.build.args).sort(),
            // Pier builds with the engine's classic builder (api/runtime/docker-builder.ts).
            builder: image.builtBy ? `Docker Engine ${image.builtBy}, classic builder` : null,
          }
        : null;

    // Seeded volumes are restored before the transaction (a copy may take a while), adopted in it.
    const seeds = await seeder.prepare(auth, manifest);
    let unused: PreparedSeed[] = seeds;
    const result = await claiming(auth, manifest.app, manifest, () => transactions.run(async (t) => {
      const [existing] = await t.tx
        .select()
        .from(apps)
        .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, manifest.app), isNull(apps.deletedAt)))
        .for('no key update');
      if (existing && auth.appId !== null && auth.appId !== existing.id) throw appNotFound(manifest.app);
      await t.checkpoint('deploy.checked');
      const app = existing ?? (await createApp(t, auth, manifest.app));
      // The environment (made on first use) and what the manifest declares for it.
      const environment = await ensureEnvironment(t, auth, request, declaredTtl(manifest, auth), new Date());
      // IPv6 first: with an IPv6 pool, the app gets its own IPv6 on its first deploy.
      await ensureIpv6(t, options.ipPools ?? [], app, new Date());
      // The app's dedicated addresses are part of what a release is: after `pier ips allocate`
      // (or a release), deploying the same manifest again makes a release that binds them.
      // A preview keeps the manifest's ports on them (api/environment-deploy.ts).
      const own = await addressesOf(t.tx, app.id);
      const placed = await environmentManifest(t.tx, app.id, manifest, environment, options.previewPorts ?? DEFAULT_PREVIEW_PORTS, own);
      const seeded = await seeder.adopt(t, app, seeds);
      unused = seeded.unused;
      const seedRecord = seedsRecord(seeded.adopted);
      if (seedRecord) placed.declared.seeds = seedRecord;
      const secretVersions = await currentSecretVersions(t.tx, app.id);
      const configHash = createHash('sha256')
        .update(JSON.stringify({ manifest: placed.manifest, imageId: image.id, ...(Object.keys(own).length ? { addresses: own } : {}), ...(Object.keys(secretVersions).length ? { secrets: secretVersions } : {}) }))
        .digest('hex');

      const [latest] = await t.tx.select().from(releases).where(eq(releases.appId, app.id)).orderBy(desc(releases.version)).limit(1);
      await t.checkpoint('deploy.versioned');
      const sameRelease = latest !== undefined && latest.configHash === configHash;
      const { app: counted, rescaled } = await applyManifestCounts(t, app, placed.manifest, sameRelease ? latest.version : (latest?.version ?? 0) + 1);
      if (latest && sameRelease && app.currentReleaseId === latest.id) {
        const [dep] = await t.tx
          .select()
          .from(deployments)
          .where(and(eq(deployments.releaseId, latest.id), ne(deployments.state, 'failed')))
          .orderBy(desc(deployments.createdAt))
          .limit(1);
        if (dep) return { app: counted, release: latest, deployment: dep, created: false, rescaled, environment };
      }
      const release =
        latest && sameRelease
          ? latest
          : await insertRelease(t, app, latest ? latest.version + 1 : 1, {
              manifest: placed.manifest,
              secrets: secretVersions,
              declared: placed.declared,
              image: reference,
              imageId: image.id,
              imageDigest,
              configHash,
              build,
              createdBy: auth.tokenId,
              description,
            });
      const deployment = await startRollout(t, counted, release, 'deploy');
      return { app: { ...counted, currentReleaseId: release.id }, release, deployment, created: true, rescaled, environment };
    })).catch(async (err: unknown) => {
      unused = seeds;
      throw err;
    }).finally(() => seeder.discard(unused));
    if (result.created) options.onRoutesChanged?.(result.app.id);
    if (result.created || result.rescaled) options.enqueue(result.app.id);
    return result;
  }

  async function rollbackTo(auth: AuthContext, appName: string, found: App, target: Release, description: string): Promise<DeployResult> {
    await ensureImage(target);
    const result = await claiming(auth, appName, target.manifest as Manifest, () => transactions.run(async (t) => {
      const app = await lockApp(t.tx, found.id, appName);
      await t.checkpoint('rollback.locked');
      const [newest] = await t.tx.select({ version: releases.version }).from(releases).where(eq(releases.appId, app.id)).orderBy(desc(releases.version)).limit(1);
      const release = await insertRelease(t, app, (newest?.version ?? 0) + 1, {
        manifest: target.manifest,
        image: target.image,
        imageId: target.imageId,
        imageDigest: target.imageDigest,
        configHash: target.configHash,
        build: target.build,
        createdBy: auth.tokenId,
        description: description || `rollback to v${target.version}`,
        rollbackOf: target.version,
      });
      const deployment = await startRollout(t, app, release, 'rollback');
      return { app: { ...app, currentReleaseId: release.id }, release, deployment, created: true, rescaled: false };
    }));
    options.onRoutesChanged?.(result.app.id);
    options.enqueue(result.app.id);
    return result;
  }

  return {
    /**
     * `built` is the image a build of this manifest's `[build]` pushed (`registry/app@sha256:…`);
     * a manifest with `[build]` cannot deploy without one.
     */
    async deploy(auth: AuthContext, manifest: Manifest, description = '', built?: string, environment?: EnvironmentRequest): Promise<DeployResult> {
      requireScope(auth, 'deploy');
      const refused = options.refuse?.(manifest);
      if (refused) throw refused;
      const reference = built ?? manifest.image;
      if (reference === undefined) {
        throw new PierError('E_BUILD_REQUIRED', `${manifest.app} builds its image from a Dockerfile ([build]), and this deploy carries no build`, {
          status: 422,
          hint: '`pier deploy -c pier.toml` uploads the build context and builds it; or name an image with image = "…" instead of [build]',
        });
      }
      await visibleOrNew(auth, manifest.app);
      return withRegistryImage(reference, null, manifest.app, () => deployImage(auth, manifest, description, built, reference, environment));
    },

    /** Rolls out a new release that copies VERSION's manifest and image (default: the last good one). */
    async rollback(auth: AuthContext, appName: string, version?: number, description = ''): Promise<DeployResult> {
      requireScope(auth, 'deploy');
      const found = await findApp(db, auth, appName);
      const all = await db.select().from(releases).where(eq(releases.appId, found.id)).orderBy(desc(releases.version));
      const current = all.find((r) => r.id === found.currentReleaseId);
      const target = version !== undefined ? all.find((r) => r.version === version) : await lastGood(found.id, all, current);
      if (!target) {
        throw version !== undefined
          ? new PierError('E_RELEASE_NOT_FOUND', `${appName} has no release v${version}`, { status: 404, hint: `\`pier releases --app ${appName}\` lists them` })
          : new PierError('E_NO_ROLLBACK_TARGET', `${appName} has no earlier release that ran healthy`, { status: 409, hint: `name a version: \`pier rollback VERSION --app ${appName}\`` });
      }
      return withRegistryImage(target.imageDigest, target.version, appName, () => rollbackTo(auth, appName, found, target, description));
    },

    /**
     * After a secret change: a new release copying the current one with the app's current secret
     * versions, rolled out like a deploy. Null when nothing is deployed yet or nothing changed.
     */
    async withSecrets(auth: AuthContext, appName: string, why: string): Promise<DeployResult | null> {
      requireScope(auth, 'deploy');
      const found = await findApp(db, auth, appName);
      if (!found.currentReleaseId) return null;
      const result = await transactions.run(async (t) => {
        const app = await lockApp(t.tx, found.id, appName);
        const [current] = app.currentReleaseId ? await t.tx.select().from(releases).where(eq(releases.id, app.currentReleaseId)) : [];
        if (!current) return null;
        const versions = await currentSecretVersions(t.tx, app.id);
        if (JSON.stringify(versions) === JSON.stringify(current.secrets ?? {})) return null;
        const [newest] = await t.tx.select({ version: releases.version }).from(releases).where(eq(releases.appId, app.id)).orderBy(desc(releases.version)).limit(1);
        const release = await insertRelease(t, app, (newest?.version ?? 0) + 1, {
          manifest: current.manifest,
          image: current.image,
          imageId: current.imageId,
          imageDigest: current.imageDigest,
          configHash: createHash('sha256').update(JSON.stringify({ of: current.configHash, secrets: versions })).digest('hex'),
          build: current.build,
          secrets: versions,
          declared: current.declared,
          createdBy: auth.tokenId,
          description: why,
        });
        const deployment = await startRollout(t, app, release, 'deploy');
        return { app: { ...app, currentReleaseId: release.id }, release, deployment, created: true, rescaled: false };
      });
      if (result) {
        options.onRoutesChanged?.(result.app.id);
        options.enqueue(result.app.id);
      }
      return result;
    },

    /**
     * Deploys SOURCE (a release of the same app in another environment) into the request's
     * environment: its exact image and its manifest as declared, with this environment's override.
     */
    async promote(auth: AuthContext, source: Release, description: string): Promise<DeployResult> {
      requireScope(auth, 'deploy');
      const declared = source.declared;
      const manifest = { ...((declared?.base ?? source.manifest) as Manifest), ...(declared && Object.keys(declared.overrides).length ? { overrides: declared.overrides as Manifest['overrides'] } : {}) };
      const reference = source.imageDigest.includes('@') ? source.imageDigest : source.imageId;
      await visibleOrNew(auth, manifest.app);
      return withRegistryImage(reference, source.version, manifest.app, () => deployImage(auth, manifest, description, undefined, reference));
    },

    /** Sets instance counts per process; they outlive deploys. Idempotent. */
    async scale(auth: AuthContext, appName: string, counts: Record<string, number>): Promise<{ app: App; changed: boolean }> {
      requireScope(auth, 'deploy');
      const found = await findApp(db, auth, appName);
      const result = await transactions.run(async (t) => {
        const app = await lockApp(t.tx, found.id, appName);
        const [release] = app.currentReleaseId ? await t.tx.select().from(releases).where(eq(releases.id, app.currentReleaseId)) : [];
        if (!release) throw new PierError('E_NOTHING_DEPLOYED', `${appName} has no release to scale yet`, { status: 409, hint: 'deploy it first with `pier deploy`' });
        const processes = Object.keys((release.manifest as Manifest).processes);
        for (const p of Object.keys(counts)) {
          if (!processes.includes(p)) {
            throw new PierError('E_PROCESS_NOT_FOUND', `${appName} v${release.version} has no process "${p}"`, { status: 422, hint: `its processes are: ${processes.join(', ')}` });
          }
        }
        const scale = { ...app.scale, ...counts };
        if (JSON.stringify(scale) === JSON.stringify(app.scale)) return { app, changed: false };
        // What the runtime cannot run is refused at the new counts as at a deploy (on a swarm: per-instance volumes spread one per node).
        const manifest = release.manifest as Manifest;
        const refused = options.refuse?.({ ...manifest, processes: Object.fromEntries(Object.entries(manifest.processes).map(([p, spec]) => [p, counts[p] === undefined ? spec : { ...spec, count: counts[p] }])) });
        if (refused) throw refused;
        const now = new Date();
        // When each count was set, so status and describe can say where a desired count came from.
        const scaledAt = { ...app.scaledAt, ...Object.fromEntries(Object.keys(counts).filter((p) => counts[p] !== app.scale[p]).map((p) => [p, now.toISOString()])) };
        const [updated] = await t.tx.update(apps).set({ scale, scaledAt, updatedAt: now }).where(eq(apps.id, app.id)).returning();
        await t.checkpoint('scale.app');
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'app.scaled',
          reason: 'scale',
          message: `scaled ${Object.entries(counts).map(([p, n]) => `${p}=${n}`).join(' ')}`,
          data: { counts: scale },
        });
        await t.checkpoint('scale.event');
        return { app: updated ?? app, changed: true };
      });
      if (result.changed) options.enqueue(result.app.id);
      return result;
    },
  };

  /**
   * Supersedes the app's running deployment, writes the new one, points the app at the release
   * and syncs its endpoints, with an event for each change.
   */
  async function startRollout(t: Txn, app: App, release: Release, why: 'deploy' | 'rollback'): Promise<Deployment> {
    const manifest = release.manifest as Manifest;
    const now = new Date();
    const id = newId('dep');
    const superseded = await t.tx
      .update(deployments)
      .set({ state: 'superseded', finishedAt: now, updatedAt: now })
      .where(and(eq(deployments.appId, app.id), eq(deployments.state, 'running')))
      .returning({ id: deployments.id, releaseId: deployments.releaseId });
    await t.checkpoint('rollout.superseded');
    const desired = countsByProcess(desiredCounts(app, manifest, release.version));
    const [deployment] = await t.tx
      .insert(deployments)
      .values({
        id,
        appId: app.id,
        releaseId: release.id,
        previousReleaseId: app.currentReleaseId === release.id ? null : app.currentReleaseId,
        strategy: manifest.deploy.strategy,
        progress: { desired, running: {} },
        deadline: new Date(now.getTime() + manifest.deploy.timeout),
      })
      .returning();
    if (!deployment) throw new Error('deployment insert returned no row');
    await t.checkpoint('rollout.deployment');
    if (superseded.length) {
      const versions = new Map(
        (await t.tx.select({ id: releases.id, version: releases.version }).from(releases).where(inArray(releases.id, superseded.map((s) => s.releaseId)))).map((r) => [r.id, r.version]),
      );
      for (const old of superseded) {
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          deploymentId: old.id,
          type: 'deploy.superseded',
          reason: why,
          message: `the rollout of v${versions.get(old.releaseId) ?? '?'} was superseded by ${why === 'rollback' ? 'a rollback' : 'a deploy'} of v${release.version} (${id})`,
          data: { supersededBy: id, releaseId: release.id, version: release.version },
        });
        await t.checkpoint('rollout.superseded-event');
      }
    }
    await t.tx.update(apps).set({ currentReleaseId: release.id, updatedAt: now }).where(eq(apps.id, app.id));
    await t.checkpoint('rollout.app');
    const changes = await syncEndpoints(t.tx, app.id, manifest, { refuseMissingFor: app.name, newApp: app.currentReleaseId === null });
    await t.checkpoint('rollout.endpoints');
    if (changes.length) {
      await t.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: deployment.id,
        type: 'endpoint.changed',
        reason: why,
        message: `endpoints of release v${release.version}: ${describeEndpointChanges(changes)}`,
        data: { changes },
      });
      await t.checkpoint('rollout.endpoint-event');
    }
    const what = why === 'rollback' ? `rolling back: release v${release.version} copies v${release.rollbackOf}` : `deploying release v${release.version}`;
    await t.record({
      orgId: app.orgId,
      appId: app.id,
      deploymentId: deployment.id,
      type: why === 'rollback' ? 'deploy.rollback' : 'deploy.started',
      reason: why,
      message: `${what} (${release.image} = ${release.imageDigest})`,
      data: { releaseId: release.id, version: release.version, image: release.image, digest: release.imageDigest, rollbackOf: release.rollbackOf },
    });
    await t.checkpoint('rollout.started-event');
    return deployment;
  }

  /**
   * A `count` written in the manifest wins at deploy time: it clears that process's `pier scale`
   * entry, with an event saying which count replaced which (api/desired-counts.ts).
   */
  async function applyManifestCounts(t: Txn, app: App, manifest: Manifest, version: number): Promise<{ app: App; rescaled: boolean }> {
    const cleared = overridesClearedBy(app, manifest);
    const names = Object.keys(cleared);
    if (names.length === 0) return { app, rescaled: false };
    const scale = Object.fromEntries(Object.entries(app.scale).filter(([p]) => !names.includes(p)));
    const scaledAt = Object.fromEntries(Object.entries(app.scaledAt).filter(([p]) => !names.includes(p)));
    const [updated] = await t.tx.update(apps).set({ scale, scaledAt, updatedAt: new Date() }).where(eq(apps.id, app.id)).returning();
    const what = names.map((p) => `${p}=${cleared[p]?.now} (was ${cleared[p]?.was} from pier scale)`).join(', ');
    await t.record({
      orgId: app.orgId,
      appId: app.id,
      type: 'app.scaled',
      reason: 'manifest-count',
      message: `the manifest of v${version} sets ${what}: a count in pier.toml replaces the pier scale count`,
      data: { counts: scale, cleared, release: version },
    });
    // Only a changed count reschedules anything.
    return { app: updated ?? { ...app, scale, scaledAt }, rescaled: names.some((p) => cleared[p]?.was !== cleared[p]?.now) };
  }

  /** Refuses early (before any image work) an app the token may not see; a new name is fine. */
  async function visibleOrNew(auth: AuthContext, name: string): Promise<void> {
    const [found] = await db.select({ id: apps.id }).from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, name), isNull(apps.deletedAt)));
    if (found ? auth.appId !== null && auth.appId !== found.id : auth.appId !== null) throw appNotFound(name);
  }

  async function createApp(t: Txn, auth: AuthContext, name: string): Promise<App> {
    if (auth.appId !== null) throw appNotFound(name);
    const [created] = await t.tx.insert(apps).values({ id: newId('app'), orgId: auth.orgId, environment: environmentOf(auth), name }).onConflictDoNothing().returning();
    await t.checkpoint('deploy.app');
    if (created) return created;
    // Another deploy created it at the same moment and has committed: take its row.
    const [again] = await t.tx
      .select()
      .from(apps)
      .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, name), isNull(apps.deletedAt)))
      .for('no key update');
    if (!again) throw new Error(`app ${name} vanished`);
    return again;
  }

  /** The app's row, locked until the transaction ends: changes to one app happen one at a time. */
  async function lockApp(tx: Db, appId: string, name: string): Promise<App> {
    const [app] = await tx.select().from(apps).where(and(eq(apps.id, appId), isNull(apps.deletedAt))).for('no key update');
    if (!app) throw appNotFound(name);
    return app;
  }

  /** The newest release older than the current one whose rollout succeeded. */
  async function lastGood(appId: string, all: Release[], current: Release | undefined): Promise<Release | undefined> {
    const good = await db.select({ releaseId: deployments.releaseId }).from(deployments).where(and(eq(deployments.appId, appId), eq(deployments.state, 'succeeded')));
    const ok = new Set(good.map((g) => g.releaseId));
    return all.find((r) => r.version < (current?.version ?? Infinity) && ok.has(r.id) && r.configHash !== current?.configHash);
  }

  /** A rollback runs the exact image of the old release: it must still be here, or pullable by digest. */
  async function ensureImage(release: Release): Promise<void> {
    try {
      await runtime.resolveImage(release.imageId, 'never');
      return;
    } catch (err) {
      // Only an image the engine does not have is gone; an engine that does not answer is
      // E_RUNTIME_UNAVAILABLE (503: retry), not a reason to rebuild.
      if (!isPierError(err) || err.code !== 'E_IMAGE_NOT_FOUND') throw err;
      if (!release.imageDigest.includes('@')) {
        throw new PierError('E_IMAGE_NOT_FOUND', `image ${release.imageId} of v${release.version} is no longer on this machine and has no registry digest`, {
          status: 422,
          hint: `rebuild ${release.image} or deploy a new release`,
          cause: err,
        });
      }
    }
    const pulled = await runtime.resolveImage(release.imageDigest, 'missing');
    if (pulled.id !== release.imageId) {
      throw new PierError('E_IMAGE_MISMATCH', `${release.imageDigest} resolved to ${pulled.id}, not ${release.imageId}`, { status: 422 });
    }
  }

  /**
   * Runs a change that claims the manifest's ports. When the database refuses a claim (another
   * app holds the port, or won it in a concurrent deploy), the change is rolled back whole and the
   * refusal names the holder, read from what is committed now. Afterwards, port modes no claim
   * uses any more are tidied away.
   */
  async function claiming<T>(auth: AuthContext, appName: string, manifest: Manifest, change: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await change();
    } catch (err) {
      if (!isClaimViolation(err)) throw err;
      const [app] = await db.select({ id: apps.id }).from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, appName), isNull(apps.deletedAt)));
      const own = app ? await addressesOf(db, app.id) : {};
      const wanted = manifest.endpoints.flatMap((e) => claimsOf({ port: e.port, access: e.access, tls: e.tls, sni: e.sni, sniDefault: e.sni_default, bindings: resolveBindings(e, own).bindings }));
      const [conflict] = await findConflicts(db, app?.id ?? null, wanted);
      throw portInUse(conflict, auth, { port: wanted[0]?.port, cause: err });
    }
    await releaseUnusedPorts(db, log);
    return result;
  }

  async function insertRelease(t: Txn, app: App, version: number, values: Omit<typeof releases.$inferInsert, 'id' | 'appId' | 'version'>): Promise<Release> {
    try {
      const [row] = await t.tx.insert(releases).values({ id: newId('rel'), appId: app.id, version, ...values }).returning();
      if (!row) throw new Error('release insert returned no row');
      await t.checkpoint('release');
      return row;
    } catch (err) {
      // Only the one constraint means "a concurrent deploy": anything else keeps its own meaning.
      if (uniqueViolation(err) !== 'releases_app_version') throw err;
      throw new PierError('E_CONFLICT', `another deploy of ${app.name} created release v${version} at the same moment`, {
        status: 409,
        hint: 'run the deploy again',
        cause: err,
      });
    }
  }
}

export type DeployService = ReturnType<typeof createDeployService>;

