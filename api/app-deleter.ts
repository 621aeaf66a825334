// `pier apps delete`: in one transaction, the app's running deployment is cancelled, its
// instances are told to stop, its endpoints are deleted (the edge stops serving them and their
// ports are free for other apps at once), its dedicated addresses are released (to cool down once
// the edges stopped serving them, api/ip-unbinder.ts),
// its app-bound tokens are revoked, and the app row
// becomes a tombstone (deleted_at) whose events stay readable and whose name is free. The
// reconciler then stops and removes the containers; the caller waits (bounded) until they are
// gone. Refused while nothing is there: E_APP_NOT_FOUND.
import { and, eq, isNull } from 'drizzle-orm';
import { apps, deployments, endpoints, instances, releases, tokens, type App } from '../db/schema/index.js';
import { appNotFound, requireScope, type AuthContext } from './auth.js';
import { DEFAULT_IP_COOLDOWN_MS, DEFAULT_IP_UNBIND_WAIT_MS } from './config.js';
import { releaseDeletedAppAddresses } from './ip-unbinder.js';
import { environmentOf } from './environment-names.js';
import { LABELS, type Runtime } from './runtime/runtime.js';
import type { Transactions } from './transactions.js';

export interface AppDeleterOptions {
  runtime: Runtime;
  transactions: Transactions;
  /** After the commit: reconcile the app (removes its containers) and rebuild its edge config. */
  onDeleted: (appId: string) => void;
  /** How long the app's released addresses wait before another app gets them (config.ips). */
  ipCooldownMs?: number;
  /** How long an address its endpoints bound waits for the edges to stop serving it (api/ip-unbinder.ts). */
  ipUnbindWaitMs?: number;
}

export interface DeleteResult {
  app: App;
  /** Instances that were running or starting and are now told to stop. */
  instances: number;
  /** Public ports the app's endpoints held, free now. */
  ports: number[];
  /** Its dedicated addresses, released (they cool down before another app gets them). */
  addresses: string[];
  tokensRevoked: number;
  /** Deployments that were rolling out, now cancelled. */
  deploymentsCancelled: string[];
  /** Containers of the app still on the engine when the wait ended (0: all gone; null: the engine did not answer). */
  containersRemaining: number | null;
}

const POLL_MS = 250;

export function createAppDeleter(options: AppDeleterOptions) {
  const { transactions, runtime } = options;

  async function containersLeft(appId: string): Promise<number> {
    return (await runtime.list({ [LABELS.app]: appId })).length;
  }

  return {
    async delete(auth: AuthContext, name: string, waitMs: number, signal?: AbortSignal): Promise<DeleteResult> {
      requireScope(auth, 'deploy');
      const now = new Date();
      const done = await transactions.run(async (t) => {
        // The row lock orders this after (or before) any deploy of the app, never in between.
        const [app] = await t.tx
          .select()
          .from(apps)
          .where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environmentOf(auth)), eq(apps.name, name), isNull(apps.deletedAt)))
          .for('no key update');
        if (!app || (auth.appId !== null && auth.appId !== app.id)) throw appNotFound(name);

        const cancelled = await t.tx
          .update(deployments)
          .set({ state: 'cancelled', failureReason: `the app ${name} was deleted`, finishedAt: now, updatedAt: now })
          .where(and(eq(deployments.appId, app.id), eq(deployments.state, 'running')))
          .returning({ id: deployments.id, releaseId: deployments.releaseId });
        for (const dep of cancelled) {
          const [rel] = await t.tx.select({ version: releases.version }).from(releases).where(eq(releases.id, dep.releaseId));
          await t.record({
            orgId: app.orgId,
            appId: app.id,
            deploymentId: dep.id,
            type: 'deploy.cancelled',
            reason: 'app-deleted',
            message: `the rollout of v${rel?.version ?? '?'} was cancelled: the app ${name} was deleted`,
            data: { releaseId: dep.releaseId },
          });
        }
        await t.checkpoint('delete.deployments');
        // Stopped at once (no drain): nothing routes to them once the endpoints are gone.
        const stopping = await t.tx
          .update(instances)
          .set({ desiredState: 'stopped', drainUntil: now, lastReason: 'app deleted', updatedAt: now })
          .where(and(eq(instances.appId, app.id), eq(instances.desiredState, 'running')))
          .returning({ id: instances.id });
        const freed = await t.tx.delete(endpoints).where(eq(endpoints.appId, app.id)).returning({ port: endpoints.port, bindings: endpoints.bindings });
        // After the endpoints: no snapshot built from now on binds them. One they bound waits for
        // the edges to say they stopped serving it before its cool-down starts.
        const addresses = await releaseDeletedAppAddresses(t, app, {
          cooldownMs: options.ipCooldownMs ?? DEFAULT_IP_COOLDOWN_MS,
          unbindWaitMs: options.ipUnbindWaitMs ?? DEFAULT_IP_UNBIND_WAIT_MS,
          at: now,
          bound: new Set(freed.flatMap((e) => e.bindings)),
        });
        const revoked = await t.tx
          .update(tokens)
          .set({ revokedAt: now })
          .where(and(eq(tokens.appId, app.id), isNull(tokens.revokedAt)))
          .returning({ id: tokens.id });
        await t.checkpoint('delete.resources');
        const [tombstone] = await t.tx
          .update(apps)
          .set({ deletedAt: now, currentReleaseId: null, scale: {}, scaledAt: {}, updatedAt: now })
          .where(eq(apps.id, app.id))
          .returning();
        const ports = freed.map((e) => e.port).sort((a, b) => a - b);
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'app.deleted',
          reason: 'delete',
          message: `app ${name} deleted: ${stopping.length} instance${stopping.length === 1 ? '' : 's'} to stop, ${
            ports.length ? `port${ports.length === 1 ? '' : 's'} ${ports.join(', ')} freed` : 'no endpoints'
          }, ${revoked.length} token${revoked.length === 1 ? '' : 's'} revoked${cancelled.length ? `, deployment ${cancelled.map((d) => d.id).join(', ')} cancelled` : ''}`,
          data: { instances: stopping.map((i) => i.id), ports, addresses, tokens: revoked.map((r) => r.id), deployments: cancelled.map((d) => d.id), by: auth.tokenId },
        });
        return {
          app: tombstone ?? { ...app, deletedAt: now },
          instances: stopping.length,
          ports,
          addresses,
          tokensRevoked: revoked.length,
          deploymentsCancelled: cancelled.map((d) => d.id),
        };
      });
      options.onDeleted(done.app.id);

      // The reconciler stops and removes the containers; wait for that, within the bound.
      const until = Date.now() + waitMs;
      let remaining = await containersLeft(done.app.id).catch(() => null);
      while (remaining !== 0 && Date.now() < until && !signal?.aborted) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        remaining = await containersLeft(done.app.id).catch(() => null);
      }
      return { ...done, containersRemaining: remaining };
    },
  };
}

export type AppDeleter = ReturnType<typeof createAppDeleter>;
