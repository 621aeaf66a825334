// A volume move's target instance, made ahead of the cutover so that only `docker start` is left
// in the downtime (api/volumes/volume-mover.ts). The mover calls `prepare` under the app's
// reconcile lock, which it holds from then to the start: no pass runs meanwhile.
//   prepare  writes the replacement's instance row (desired running, no container yet) and creates
//            its container, not started, with the volume's Docker volume on the target root
//            mounted `noCopy`: the target's data is not there yet, and a local volume with o=bind
//            is mounted only at start then (Docker mounts it at create to copy the image's files
//            into an empty volume otherwise). The process's other volumes are mounted where they
//            are, `noCopy` too (api/volumes/move-target.ts picks them; the switch hands them over).
//            Nothing else starts it: no restart policy, and the reconciler only ever starts
//            containers it creates itself;
//   start    `docker start` after the switch; the next pass binds the running container to the
//            row (reconciler.ts observe: a row without a container id whose container runs);
//   discard  removes the container (by name, the row's id); the mover deletes the row in its
//            rollback transaction. A container left by a server that died is removed by the
//            first pass that sees it (observe removes a `created` container of a row that has no
//            container id) or, once the row is gone, as an orphan.
import { eq } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { instances, type Instance, type Release } from '../../db/schema/index.js';
import type { Manifest } from '../manifest.js';
import type { MountSpec, Runtime } from '../runtime/runtime.js';
import { createContainerSpecs, type ContainerSpecOptions, type SpecApp } from './container-spec.js';
import { effectiveCheck } from './readiness-check.js';

export interface PreparedStartsOptions extends ContainerSpecOptions {
  db: Db;
  runtime: Runtime;
  nodeId: string;
  log: Logger;
}

export function createPreparedStarts(options: PreparedStartsOptions) {
  const { db, runtime } = options;
  const specs = createContainerSpecs(options);

  return {
    /**
     * The replacement of `holder` (same process, `release`) as instance `id` (the caller records
     * it first): its row and its created container. On failure nothing of it is left.
     */
    async prepare(app: SpecApp, holder: Instance, release: Release, mounts: MountSpec[], id: string): Promise<void> {
      const manifest = release.manifest as Manifest;
      const [row] = await db
        .insert(instances)
        .values({
          id,
          appId: app.id,
          releaseId: release.id,
          process: holder.process,
          nodeId: options.nodeId,
          health: effectiveCheck(manifest, holder.process) ? 'starting' : 'none',
        })
        .returning();
      const inserted = row as Instance;
      const log = options.log.child({ app: app.id, instance: inserted.id });
      try {
        const spec = await specs.full(inserted, release, app, mounts.map((m) => ({ ...m, noCopy: true })), log);
        await runtime.create(spec);
      } catch (err) {
        await runtime.remove(inserted.id).catch(() => undefined);
        await db.delete(instances).where(eq(instances.id, inserted.id)).catch((e: unknown) => log.warn({ err: e }, 'prepared instance row not deleted'));
        throw err;
      }
    },

    /** Starts the prepared container; returns once its process runs. */
    start(instanceId: string): Promise<void> {
      return runtime.start(instanceId);
    },

    /** Removes the prepared container (gone already is fine). */
    discard(instanceId: string): Promise<void> {
      return runtime.remove(instanceId);
    },
  };
}

export type PreparedStarts = ReturnType<typeof createPreparedStarts>;

