// Seeding an environment's volumes: `[env.preview.volumes.data] from = "snapshot:staging/data@latest"`
// makes a deploy that creates the volume start it as a copy of that snapshot (restored into new
// volume data, as `pier volumes restore` does). Only then: a volume that exists keeps its data, so
// a later deploy never overwrites what the preview wrote. The snapshot is resolved at deploy (a
// missing one refuses the deploy, E_SEED_NOT_FOUND) and must belong to an environment the token
// may act in: a `pr-*` token cannot seed from production (nor read its secrets). The copy is made
// before the deploy's transaction (which should not wait on a file copy); the transaction writes
// the volume row, and data it did not use is removed afterwards. The copy is made where the
// snapshot is: on its storage root (a second root of this machine after a move, or a swarm node's
// agent, `node:ADDRESS`), so the new volume lives there too and its group runs where it is.
import { and, desc, eq, isNull } from 'drizzle-orm';
import { pino, type Logger } from 'pino';
import type { Db } from '../db/database.js';
import { apps, environments, snapshots, volumes, type App, type Snapshot } from '../db/schema/index.js';
import type { AuthContext } from './auth.js';
import { environmentOf, matchesPattern, PERSISTENT_NAMES } from './environment-names.js';
import { overrideFor } from './environment-overrides.js';
import { newId } from './ids.js';
import type { Manifest, VolumeSpec } from './manifest.js';
import { PierError } from './pier-error.js';
import type { Txn } from './transactions.js';
import { nodeRootAddress } from './volumes/agent-roots.js';
import type { VolumeDriver } from './volumes/volume-driver.js';
import { createVolumeRoots, DEFAULT_ROOT, type VolumeRoots } from './volumes/volume-roots.js';

export interface VolumeSeederOptions {
  db: Db;
  /** The server's volume storage; without one a seeded volume cannot be made (E_VOLUMES_UNAVAILABLE). */
  driver?: VolumeDriver | undefined;
  /** Every storage root (the default one is `driver`); without it, only the default root. */
  roots?: VolumeRoots | undefined;
  nodeId: string;
  log?: Logger | undefined;
}

/** A volume's data restored from its seed, waiting for the deploy's transaction to adopt it. */
export interface PreparedSeed {
  volume: string;
  from: string;
  snapshot: Snapshot;
  /** Where the seed's snapshot lives. */
  sourceEnvironment: string;
  spec: VolumeSpec;
  volumeId: string;
  /** The storage root the data was restored on: the snapshot's. */
  root: string;
  /** The node the volume is on: the snapshot's volume's on a swarm node's root, else this server's. */
  nodeId: string;
}

export function createVolumeSeeder(options: VolumeSeederOptions) {
  const { db } = options;
  const log = options.log ?? pino({ level: 'silent' });
  const roots = options.roots ?? (options.driver ? createVolumeRoots(new Map([[DEFAULT_ROOT, options.driver]])) : undefined);

  /** Removes restored data no transaction adopted; a failure is logged (the data is an orphan folder). */
  async function discard(seeds: PreparedSeed[]): Promise<void> {
    for (const s of seeds) {
      await (async () => roots?.get(s.root).remove(s.volumeId))().catch((err: unknown) => log.warn({ err, volume: s.volumeId }, 'unused seeded volume data not removed'));
    }
  }

  /** The seeds the manifest's override asks for, for volumes the app does not have yet. */
  async function wanted(auth: AuthContext, manifest: Manifest): Promise<{ volume: string; from: string; spec: VolumeSpec }[]> {
    const overrides = manifest.overrides ?? {};
    // Most deploys seed nothing: no query for them.
    if (!Object.values(overrides).some((o) => Object.values(o.volumes ?? {}).some((v) => v.from !== 'empty'))) return [];
    const name = environmentOf(auth);
    const [env] = await db.select({ kind: environments.kind }).from(environments).where(and(eq(environments.orgId, auth.orgId), eq(environments.name, name), isNull(environments.destroyedAt)));
    // As ensureEnvironment decides it for an environment a deploy makes.
    const preview = env ? env.kind === 'preview' : !PERSISTENT_NAMES.has(name);
    const applied = overrideFor(overrides, name, preview);
    const seeds = Object.entries((applied ? overrides[applied] : undefined)?.volumes ?? {}).filter(([, v]) => v.from !== 'empty');
    if (seeds.length === 0) return [];
    const out = [];
    for (const [volume, { from }] of seeds) {
      const spec = manifest.volumes.find((v) => v.name === volume);
      if (!spec) throw seedInvalid(`[env.${applied}.volumes.${volume}] seeds a volume the manifest does not have`, `add a [[volumes]] entry named ${volume}, or remove the table`);
      if (spec.per_instance) throw seedInvalid(`[env.${applied}.volumes.${volume}] seeds a per_instance volume, and seeding makes one volume`, 'seed a shared volume (per_instance = false), or leave from out');
      out.push({ volume, from, spec });
    }
    const [app] = await db.select({ id: apps.id }).from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, name), eq(apps.name, manifest.app), isNull(apps.deletedAt)));
    if (!app) return out;
    const have = new Set((await db.select({ name: volumes.name }).from(volumes).where(and(eq(volumes.appId, app.id), isNull(volumes.deletedAt)))).map((v) => v.name));
    return out.filter((s) => !have.has(s.volume));
  }

  /** The snapshot a `from` names, checked against what the token may read. */
  async function resolve(auth: AuthContext, appName: string, volume: string, from: string): Promise<{ snapshot: Snapshot; environment: string }> {
    const m = /^snapshot:(?:(snap_[a-z0-9]+)|([a-z][a-z0-9-]*)\/([a-z][a-z0-9-]*)@(latest|snap_[a-z0-9]+))$/.exec(from);
    if (!m) throw seedInvalid(`volume ${volume}: from = "${from}" is not a seed`, 'use "snapshot:ENV/VOLUME@latest", "snapshot:SNAPSHOT_ID" or "empty"');
    const notFound = (what: string, hint: string) =>
      new PierError('E_SEED_NOT_FOUND', `volume ${volume} is seeded from ${what}, which does not exist: nothing was deployed`, { status: 422, hint, details: { volume, from } });
    if (m[1]) {
      const [row] = await db.select({ s: snapshots, environment: apps.environment }).from(snapshots).innerJoin(apps, eq(apps.id, snapshots.appId)).where(and(eq(snapshots.id, m[1]), eq(apps.orgId, auth.orgId)));
      // A snapshot in an environment the token may not read is as good as missing to it.
      if (!row || !mayRead(auth, row.environment, row.s.appId)) throw notFound(`snapshot ${m[1]}`, '`pier snapshots list --app APP --env ENV` lists the snapshots; or set from = "empty"');
      return { snapshot: row.s, environment: row.environment };
    }
    const [, , environment, source, which] = m as unknown as [string, undefined, string, string, string];
    if (!mayRead(auth, environment, null)) {
      throw new PierError('E_ENVIRONMENT_FORBIDDEN', `volume ${volume} is seeded from ${environment}, and this token (bound to environments "${auth.environments ?? ''}"${auth.appId ? ', and to one app' : ''}) may not read it`, {
        status: 403,
        hint: `seed from an environment the token may act in (e.g. a token made with --env "pr-*,${environment}"), or set from = "empty"`,
      });
    }
    const [app] = await db.select({ id: apps.id }).from(apps).where(and(eq(apps.orgId, auth.orgId), eq(apps.environment, environment), eq(apps.name, appName), isNull(apps.deletedAt)));
    if (!app) throw notFound(`${environment}/${source}@${which}`, `${appName} is not deployed in ${environment}: deploy it there first (pier deploy --env ${environment}), or set from = "empty"`);
    const [snapshot] = await db
      .select()
      .from(snapshots)
      .where(and(eq(snapshots.appId, app.id), eq(snapshots.volumeName, source), which === 'latest' ? undefined : eq(snapshots.id, which)))
      .orderBy(desc(snapshots.createdAt))
      .limit(1);
    if (!snapshot) {
      throw notFound(
        `${environment}/${source}@${which}`,
        which === 'latest'
          ? `${appName} in ${environment} has no snapshot of ${source}: take one (pier volumes snapshot --app ${appName} --env ${environment} ${source}), or set from = "empty"`
          : `pier snapshots list --app ${appName} --env ${environment} lists its snapshots`,
      );
    }
    return { snapshot, environment };
  }

  /** On a swarm node's root, the node the snapshot's volume is (or was) on; else this server's node. */
  async function nodeOf(snapshot: Snapshot): Promise<string> {
    if (nodeRootAddress(snapshot.root) === null || !snapshot.volumeId) return options.nodeId;
    const [source] = await db.select({ nodeId: volumes.nodeId }).from(volumes).where(eq(volumes.id, snapshot.volumeId));
    return source?.nodeId ?? options.nodeId;
  }

  return {
    /**
     * Before the deploy's transaction: restores each seed the deploy needs into new volume data.
     * Throws (having removed what it made) for a seed that is missing, forbidden or not restorable.
     */
    async prepare(auth: AuthContext, manifest: Manifest): Promise<PreparedSeed[]> {
      const todo = await wanted(auth, manifest);
      if (todo.length === 0) return [];
      if (!roots) {
        throw new PierError('E_VOLUMES_UNAVAILABLE', `volume ${todo[0]?.volume} is seeded from a snapshot, and this server has no volume storage`, { status: 503, hint: 'set PIER_VOLUMES_DIR for pier server' });
      }
      const made: PreparedSeed[] = [];
      try {
        for (const s of todo) {
          const { snapshot, environment } = await resolve(auth, manifest.app, s.volume, s.from);
          // The snapshot's own root restores it (a root this server was not given is E_VOLUME_ROOT_UNKNOWN).
          const driver = roots.get(snapshot.root);
          if (snapshot.driver !== driver.kind) {
            throw seedInvalid(`volume ${s.volume} is seeded from snapshot ${snapshot.id}, kept by the ${snapshot.driver} driver, and its storage root ${snapshot.root} now uses ${driver.kind}`, 'export it and import it here (pier volumes export / import), then seed from the imported snapshot');
          }
          const volumeId = newId('vol');
          made.push({ ...s, snapshot, sourceEnvironment: environment, volumeId, root: snapshot.root, nodeId: await nodeOf(snapshot) });
          await driver.restore(snapshot.id, volumeId, { sizeLimitBytes: s.spec.size ?? null });
          const check = await driver.treeHash({ volume: volumeId });
          if (check.sha256 !== snapshot.sha256) {
            throw new PierError('E_SNAPSHOT_CORRUPT', `the data restored from snapshot ${snapshot.id} for volume ${s.volume} does not match it (sha256 ${check.sha256}, expected ${snapshot.sha256})`, {
              status: 500,
              hint: 'nothing was deployed; the snapshot may be damaged: seed from another one',
            });
          }
        }
      } catch (err) {
        await discard(made);
        throw err;
      }
      return made;
    },

    /**
     * In the deploy's transaction: the volume rows of the seeds, with a `volume.seeded` event each.
     * A volume another deploy made meanwhile wins (its data is kept); the seeds not adopted are returned.
     */
    async adopt(t: Txn, app: App, seeds: PreparedSeed[]): Promise<{ adopted: PreparedSeed[]; unused: PreparedSeed[] }> {
      const adopted: PreparedSeed[] = [];
      const unused: PreparedSeed[] = [];
      for (const s of seeds) {
        const [existing] = await t.tx.select({ id: volumes.id }).from(volumes).where(and(eq(volumes.appId, app.id), eq(volumes.name, s.volume), isNull(volumes.deletedAt)));
        if (existing) {
          unused.push(s);
          continue;
        }
        await t.tx.insert(volumes).values({
          id: s.volumeId,
          appId: app.id,
          name: s.volume,
          spec: s.volume,
          process: s.spec.process,
          mountPath: s.spec.path,
          nodeId: s.nodeId,
          driver: s.snapshot.driver,
          root: s.root,
          sizeLimitBytes: s.spec.size ?? null,
        });
        await t.record({
          orgId: app.orgId,
          appId: app.id,
          type: 'volume.seeded',
          reason: 'seed',
          message: `volume ${s.volume} created from snapshot ${s.snapshot.id} (${s.from}, of ${s.sourceEnvironment})${s.root === DEFAULT_ROOT ? '' : ` on ${nodeRootAddress(s.root) === null ? `root ${s.root}` : `node ${nodeRootAddress(s.root)}`}`}: ${s.snapshot.files} files, ${s.snapshot.bytes} bytes`,
          data: { volumeId: s.volumeId, snapshotId: s.snapshot.id, from: s.from, environment: s.sourceEnvironment, sha256: s.snapshot.sha256, root: s.root },
        });
        adopted.push(s);
      }
      return { adopted, unused };
    },

    discard,
  };
}

export type VolumeSeeder = ReturnType<typeof createVolumeSeeder>;

/** What a release records of the seeds it made: volume → where its data came from. */
export function seedsRecord(seeds: PreparedSeed[]): Record<string, { from: string; snapshot: string; environment: string }> | undefined {
  if (seeds.length === 0) return undefined;
  return Object.fromEntries(seeds.map((s) => [s.volume, { from: s.from, snapshot: s.snapshot.id, environment: s.sourceEnvironment }]));
}

/** A token may read an environment its pattern allows; one bound to an app reads no other app. */
function mayRead(auth: AuthContext, environment: string, appId: string | null): boolean {
  if (auth.appId !== null && auth.appId !== appId) return false;
  return matchesPattern(environment, auth.environments);
}

function seedInvalid(message: string, hint: string): PierError {
  return new PierError('E_SEED_INVALID', message, { status: 422, hint });
}
