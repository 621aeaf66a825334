// Creating a deploy: validate the manifest, resolve the image to its digest, write release N
// (or find the identical one) and a deployment, then let the scheduler roll it out.
import { createHash } from 'node:crypto';
import { and, desc, eq, ne } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, deployments, endpoints, releases, type App, type Deployment, type Release } from '../db/schema/index.js';
import { appNotFound, requireScope, type AuthContext } from './auth.js';
import { syncEndpoints } from './endpoint-sync.js';
import type { EventLog } from './event-log.js';
import { newId } from './ids.js';
import type { Manifest } from './manifest.js';
import { PierError } from './pier-error.js';
import type { Runtime } from './runtime/runtime.js';

export interface DeployServiceOptions {
  db: Db;
  runtime: Runtime;
  events: EventLog;
  deployTimeoutMs: number;
  /** Asks the scheduler to reconcile the app. */
  enqueue: (appId: string) => void;
}

export interface DeployResult {
  app: App;
  release: Release;
  deployment: Deployment;
  /** False when this exact manifest and digest were already deployed: nothing new was started. */
  created: boolean;
}

export function createDeployService(options: DeployServiceOptions) {
  const { db, runtime, events } = options;

  return {
    async deploy(auth: AuthContext, manifest: Manifest, description = ''): Promise<DeployResult> {
      requireScope(auth, 'deploy');
      const app = await findOrCreateApp(auth, manifest.app);
      await checkPorts(app, manifest);
      const image = await runtime.resolveImage(manifest.image, 'missing');
      const imageDigest = image.repoDigest ?? image.id;
      const configHash = createHash('sha256').update(JSON.stringify({ manifest, imageId: image.id })).digest('hex');

      const [latest] = await db.select().from(releases).where(eq(releases.appId, app.id)).orderBy(desc(releases.version)).limit(1);
      if (latest && latest.configHash === configHash && app.currentReleaseId === latest.id) {
        const [dep] = await db
          .select()
          .from(deployments)
          .where(and(eq(deployments.releaseId, latest.id), ne(deployments.state, 'failed')))
          .orderBy(desc(deployments.createdAt))
          .limit(1);
        if (dep) return { app, release: latest, deployment: dep, created: false };
      }

      const release =
        latest && latest.configHash === configHash
          ? latest
          : await insertRelease(app, latest ? latest.version + 1 : 1, {
              manifest,
              image: manifest.image,
              imageId: image.id,
              imageDigest,
              configHash,
              createdBy: auth.tokenId,
              description,
            });

      const now = new Date();
      await db
        .update(deployments)
        .set({ state: 'superseded', finishedAt: now, updatedAt: now })
        .where(and(eq(deployments.appId, app.id), eq(deployments.state, 'running')));
      const desired = Object.fromEntries(Object.entries(manifest.processes).map(([p, s]) => [p, s.count]));
      const [deployment] = await db
        .insert(deployments)
        .values({
          id: newId('dep'),
          appId: app.id,
          releaseId: release.id,
          previousReleaseId: app.currentReleaseId === release.id ? null : app.currentReleaseId,
          strategy: 'rolling',
          progress: { desired, running: {} },
          deadline: new Date(now.getTime() + options.deployTimeoutMs),
        })
        .returning();
      if (!deployment) throw new Error('deployment insert returned no row');
      const [updated] = await db.update(apps).set({ currentReleaseId: release.id, updatedAt: now }).where(eq(apps.id, app.id)).returning();
      await syncEndpoints(db, app.id, manifest);
      await events.record({
        orgId: app.orgId,
        appId: app.id,
        deploymentId: deployment.id,
        type: 'deploy.started',
        reason: 'deploy',
        message: `deploying release v${release.version} (${manifest.image} = ${imageDigest})`,
        data: { releaseId: release.id, version: release.version, image: manifest.image, digest: imageDigest },
      });
      options.enqueue(app.id);
      return { app: updated ?? app, release, deployment, created: true };
    },
  };

  async function findOrCreateApp(auth: AuthContext, name: string): Promise<App> {
    const [found] = await db.select().from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.name, name)));
    if (found) {
      if (auth.appId !== null && auth.appId !== found.id) throw appNotFound(name);
      return found;
    }
    if (auth.appId !== null) throw appNotFound(name);
    const [created] = await db
      .insert(apps)
      .values({ id: newId('app'), orgId: auth.orgId, name })
      .onConflictDoNothing()
      .returning();
    if (created) return created;
    // Another request created it at the same moment.
    const [again] = await db.select().from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.name, name)));
    if (!again) throw new Error(`app ${name} vanished`);
    return again;
  }

  /** A public port belongs to one app: refuse a manifest that takes another app's port. */
  async function checkPorts(app: App, manifest: Manifest): Promise<void> {
    for (const e of manifest.endpoints) {
      const [taken] = await db
        .select({ appName: apps.name })
        .from(endpoints)
        .innerJoin(apps, eq(apps.id, endpoints.appId))
        .where(and(eq(endpoints.port, e.port), ne(endpoints.appId, app.id)));
      if (taken) {
        throw new PierError('E_PORT_IN_USE', `port ${e.port} is already served for another app`, {
          status: 409,
          hint: 'choose another port for this endpoint, or remove the endpoint from the other app',
          details: { port: e.port },
        });
      }
    }
  }

  async function insertRelease(app: App, version: number, values: Omit<typeof releases.$inferInsert, 'id' | 'appId' | 'version'>): Promise<Release> {
    try {
      const [row] = await db.insert(releases).values({ id: newId('rel'), appId: app.id, version, ...values }).returning();
      if (!row) throw new Error('release insert returned no row');
      return row;
    } catch (err) {
      throw new PierError('E_CONFLICT', `another deploy of ${app.name} created release v${version} at the same moment`, {
        status: 409,
        hint: 'run the deploy again',
        cause: err,
      });
    }
  }
}

export type DeployService = ReturnType<typeof createDeployService>;
