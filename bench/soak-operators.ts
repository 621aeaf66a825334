// The soak's clients: operators that run random operations (soak-ops.ts) one after the other until
// the deadline, and an event follower that reads each app's events the way `pier events -f` and
// the CLI's deploy follow do (`after` the last id it saw). At the end, every event in the
// database must have been seen by the follower: one it skipped means a client following events
// lost it (an event committed after one with a higher id had been read).
import type { EventView } from '../api/views.js';
import type { SoakClient } from './soak-client.js';
import { OPS, type OpContext } from './soak-ops.js';
import type { Random } from './soak-random.js';
import type { Tally } from './soak-tally.js';

export interface Running {
  /** Resolves when every loop has finished its current step. */
  stop(): Promise<void>;
}

/** `count` operators, each with its own random stream, until `until` (tally time) or stop(). */
export function startOperators(base: Omit<OpContext, 'random'>, random: Random, count: number, until: number): Running {
  let stopped = false;
  const loops = Array.from({ length: count }, async (_, i) => {
    const mine = random.fork(`operator-${i}`);
    for (let step = 0; step < 100_000 && !stopped && base.tally.now() < until; step++) {
      const op = mine.weighted(OPS);
      try {
        await op({ ...base, random: mine });
      } catch (err) {
        base.tally.finding('soak operation threw', `${op.name}: ${(err as Error).stack ?? String(err)}`);
      }
      await sleepUnless(() => stopped, mine.int(300, 1500));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

export interface Follower extends Running {
  /** Event ids seen per app, in the order they came. */
  seen: Map<string, number[]>;
  /** One more round for every app (after the run, to catch up). */
  poll(): Promise<void>;
}

export function startFollower(client: SoakClient, tally: Tally, apps: readonly string[], intervalMs: number): Follower {
  const seen = new Map<string, number[]>(apps.map((a) => [a, []]));
  let stopped = false;
  const pollApp = async (app: string): Promise<void> => {
    const ids = seen.get(app) as number[];
    // Bounded: 1000 events a page, at most 50 pages a round.
    for (let page = 0; page < 50; page++) {
      const after = ids.at(-1) ?? 0;
      const answer = await client.http('GET', `/v1/apps/${app}/events?after=${after}&limit=1000`);
      tally.request({ kind: 'events (http, follow)', outcome: answer.code === null ? 'ok' : answer.code === 'E_APP_NOT_FOUND' ? 'expected' : 'failed', code: answer.code, message: answer.message, ms: answer.ms });
      const events = (answer.body as { events?: EventView[] } | null)?.events ?? [];
      for (const e of events) {
        if (e.id <= (ids.at(-1) ?? 0)) tally.finding('events out of order', `${app}: event ${e.id} came after ${ids.at(-1)}`);
        else ids.push(e.id);
      }
      if (events.length < 1000) return;
    }
  };
  const poll = async (): Promise<void> => {
    for (const app of apps) await pollApp(app);
  };
  const loop = (async () => {
    for (let round = 0; round < 100_000 && !stopped; round++) {
      await poll();
      await sleepUnless(() => stopped, intervalMs);
    }
  })();
  return {
    seen,
    poll,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** Sleeps up to `ms`, waking early (checked every 100 ms) once `stop()` says so. */
export async function sleepUnless(stop: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!stop() && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
}
