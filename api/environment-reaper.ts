// The reaper: previews are destroyed once they expire (an `environment.expiring` event an hour
// before, once per expiry), and containers labelled with an environment that no longer exists
// are swept (a server that died between a destroy and the reconciler's cleanup leaves them). A
// destroyed environment's private network (a bridge on one engine, an overlay on a swarm) is
// removed once nothing uses it; a removal that fails is recorded once (an
// `environment.network_not_removed` event) and tried again each pass. It never touches a
// persistent environment, and containers of other installations are not its own.
// A pass that fails is logged, recorded and retried on the next tick: the server never dies of it.
import { and, eq, isNotNull, isNull, like, lte } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { apps, environments, privateNetworks } from '../db/schema/index.js';
import type { EnvironmentService } from './environment-service.js';
import type { EventLog } from './event-log.js';
import { isPierError } from './pier-error.js';
import { LABELS, type Runtime } from './runtime/runtime.js';

export const EXPIRY_WARNING_MS = 3_600_000;

export interface ReaperOptions {
  db: Db;
  events: EventLog;
  environments: EnvironmentService;
  runtime: Runtime;
  installationId: string;
  log: Logger;
  /** The clock (tests pass a fake one). */
  now?: () => Date;
  /** Milliseconds between passes (default 60 000). */
  intervalMs?: number;
  /** Told the name of each private network it removed (the private networks' cache forgets it). */
  onNetworkRemoved?: ((name: string) => void) | undefined;
}

export interface ReapResult {
  warned: string[];
  destroyed: string[];
  swept: string[];
  /** Private networks of destroyed environments removed, by name. */
  networks: string[];
}

export function createEnvironmentReaper(options: ReaperOptions) {
  const { db, events, runtime, log } = options;
  const now = options.now ?? (() => new Date());
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<ReapResult> | null = null;
  /** Networks whose removal failed, told once (an event) until one succeeds. */
  const failing = new Set<string>();

  async function pass(): Promise<ReapResult> {
    const at = now();
    const result: ReapResult = { warned: [], destroyed: [], swept: [], networks: [] };
    const previews = await db.select().from(environments).where(and(eq(environments.kind, 'preview'), isNull(environments.destroyedAt), isNotNull(environments.expiresAt), lte(environments.expiresAt, new Date(at.getTime() + EXPIRY_WARNING_MS))));
    for (const env of previews) {
      const expiresAt = env.expiresAt as Date;
      try {
        if (expiresAt.getTime() <= at.getTime()) {
          await options.environments.destroy({ tokenId: 'reaper', tokenName: 'reaper', orgId: env.orgId, scope: 'admin', appId: null }, env.name, { reason: 'expired', waitMs: 0 });
          result.destroyed.push(env.name);
        } else if (!env.warnedAt) {
          const [claimed] = await db.update(environments).set({ warnedAt: at }).where(and(eq(environments.id, env.id), isNull(environments.warnedAt))).returning({ id: environments.id });
          if (!claimed) continue;
          await events.record({
            orgId: env.orgId,
            type: 'environment.expiring',
            reason: 'ttl',
            message: `environment ${env.name} expires at ${expiresAt.toISOString()} and will be destroyed then; \`pier env extend ${env.name} --ttl 24h\` keeps it`,
            data: { environment: env.name, expiresAt: expiresAt.toISOString() },
          });
          result.warned.push(env.name);
        }
      } catch (err) {
        log.warn({ err, environment: env.name }, 'preview not reaped');
      }
    }
    result.swept = await sweep();
    result.networks = await sweepNetworks();
    return result;
  }

  /**
   * Removes the private network of each destroyed environment once no container is left on it,
   * and frees its subnets for another (api/private/private-network-key.ts: `ORG.ENV` keys; the
   * production network, keyed by the org alone, is never removed here).
   */
  async function sweepNetworks(): Promise<string[]> {
    const rows = await db.select().from(privateNetworks).where(like(privateNetworks.key, '%.%'));
    const removed: string[] = [];
    for (const row of rows) {
      const environment = row.key.slice(row.key.indexOf('.') + 1);
      try {
        const [live] = await db.select({ id: environments.id }).from(environments).where(and(eq(environments.orgId, row.orgId), eq(environments.name, environment), isNull(environments.destroyedAt)));
        if (live) continue;
        // A container still on it (a deleted app's, not yet stopped), or on a swarm a service or
        // a task shutting down, keeps it until a later pass.
        if (!(await runtime.removeNetwork(row.name))) continue;
        await db.delete(privateNetworks).where(eq(privateNetworks.key, row.key));
        failing.delete(row.name);
        options.onNetworkRemoved?.(row.name);
        removed.push(row.name);
        log.info({ network: row.name, environment }, 'private network of a destroyed environment removed');
      } catch (err) {
        log.warn({ err, network: row.name }, 'private network of a destroyed environment not removed; trying again next pass');
        if (!failing.has(row.name)) {
          failing.add(row.name);
          const code = isPierError(err) ? err.code : 'E_INTERNAL';
          await events
            .record({
              orgId: row.orgId,
              type: 'environment.network_not_removed',
              reason: code,
              message: `the private network ${row.name} of destroyed environment ${environment} was not removed (${err instanceof Error ? err.message : String(err)}); the reaper tries again each pass`,
              data: { environment, network: row.name, code },
            })
            .catch((e: unknown) => log.warn({ err: e }, 'event not recorded'));
        }
      }
    }
    return removed;
  }

  /** Removes this installation's containers whose environment has no live app any more. */
  async function sweep(): Promise<string[]> {
    const containers = await runtime.list({ [LABELS.installation]: options.installationId });
    const labelled = containers.filter((c) => c.labels[LABELS.environment] && c.labels[LABELS.environment] !== 'production' && c.labels[LABELS.app]);
    if (!labelled.length) return [];
    const live = new Set((await db.select({ id: apps.id }).from(apps).where(isNull(apps.deletedAt))).map((a) => a.id));
    const swept: string[] = [];
    for (const c of labelled) {
      if (live.has(c.labels[LABELS.app] as string)) continue;
      // A deleted app's containers are the reconciler's to stop first; a running one is left to it.
      if (c.state === 'running') continue;
      try {
        await runtime.remove(c.id);
        swept.push(c.id);
      } catch (err) {
        log.warn({ err, container: c.id }, 'leftover container not removed');
      }
    }
    return swept;
  }

  return {
    /** One pass now (tests call it with a fake clock); passes never overlap. */
    tick(): Promise<ReapResult> {
      running ??= pass().finally(() => {
        running = null;
      });
      return running;
    },
    start(): void {
      if (timer) return;
      timer = setInterval(() => {
        this.tick().catch((err: unknown) => log.warn({ err }, 'reaper pass failed'));
      }, options.intervalMs ?? 60_000);
      timer.unref();
    },
    async close(): Promise<void> {
      if (timer) clearInterval(timer);
      timer = null;
      await running?.catch(() => undefined);
    },
  };
}

export type EnvironmentReaper = ReturnType<typeof createEnvironmentReaper>;
