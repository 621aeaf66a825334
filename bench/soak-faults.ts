// The fault schedule: after a random pause, one fault at a time, drawn from the seeded stream —
// the Docker engine killed (SIGKILL) or stopped (SIGTERM), PostgreSQL stopped immediate (a crash)
// or fast, the API process killed (the supervisor restarts it), or the whole `pier server` stopped
// with SIGTERM — then, after a random downtime, restarted by the soak, and its recovery recorded.
// A dependency the soak cannot bring back is a finding and ends the fault loop.
import type { SoakDockerd } from './soak-dockerd.js';
import { sleepUnless, type Running } from './soak-operators.js';
import type { SoakPier } from './soak-pier.js';
import type { SoakPostgres } from './soak-postgres.js';
import type { Random } from './soak-random.js';
import type { FaultKind, Tally } from './soak-tally.js';

export interface FaultTargets {
  dockerd: SoakDockerd;
  postgres: SoakPostgres;
  pier: SoakPier;
}

/** How often each kind is drawn. */
const WEIGHTS: readonly (readonly [FaultKind, number])[] = [
  ['docker-kill', 3],
  ['docker-term', 2],
  ['postgres-immediate', 3],
  ['postgres-fast', 2],
  ['api-kill', 3],
  ['server-restart', 2],
];

export interface FaultOptions {
  /** Pause between the recovery of one fault and the next, in ms. */
  gapMs: [number, number];
  /** Tally time after which no fault starts. */
  until: number;
  log(line: string): void;
}

export function startFaults(targets: FaultTargets, tally: Tally, random: Random, options: FaultOptions): Running {
  let stopped = false;
  const loop = (async () => {
    for (let n = 0; n < 10_000; n++) {
      const gap = random.int(options.gapMs[0], options.gapMs[1]);
      const kind = random.weighted(WEIGHTS);
      // Drawn up front so that the schedule does not depend on how long anything took.
      const downMs = kind === 'api-kill' ? 0 : kind === 'server-restart' ? random.int(0, 3000) : random.int(kind === 'docker-term' ? 0 : 2000, 12_000);
      await sleepUnless(() => stopped, gap);
      if (stopped || tally.now() >= options.until) return;
      const record = tally.fault(kind, downMs);
      options.log(`fault ${n + 1}: ${kind}${downMs ? `, down ${(downMs / 1000).toFixed(1)} s` : ''}`);
      try {
        await inject(targets, kind, downMs);
        record.recoveredAt = tally.now();
        options.log(`fault ${n + 1}: recovered after ${((record.recoveredAt - record.at) / 1000).toFixed(1)} s`);
      } catch (err) {
        record.note = (err as Error).message;
        tally.finding('dependency not restored', `${kind}: ${(err as Error).message}`);
        return;
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function inject(t: FaultTargets, kind: FaultKind, downMs: number): Promise<void> {
  const down = (): Promise<void> => new Promise((r) => setTimeout(r, downMs));
  switch (kind) {
    case 'docker-kill':
    case 'docker-term':
      await t.dockerd.stop(kind === 'docker-kill' ? 'SIGKILL' : 'SIGTERM');
      await down();
      await retry(() => t.dockerd.start());
      return;
    case 'postgres-immediate':
    case 'postgres-fast':
      await t.postgres.stop(kind === 'postgres-immediate' ? 'immediate' : 'fast');
      await down();
      await retry(() => t.postgres.start());
      return;
    case 'api-kill':
      await t.pier.killApi(120_000);
      return;
    case 'server-restart':
      await t.pier.stop();
      await down();
      await retry(() => t.pier.start());
      return;
  }
}

/** Three tries, 2 s apart: a restart right after a kill can trip on what the dead one left. */
async function retry(start: () => Promise<void>): Promise<void> {
  let last: unknown;
  for (let i = 0; i < 3; i++) {
    try {
      await start();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  throw last;
}
