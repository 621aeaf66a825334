// The upgrade path from a Pier that published ports: at server start, before the edge gets its
// first snapshot, every running instance that has no address on Pier's network (its container
// was started before the network existed) is joined to it, so the first snapshot already routes
// to it and no connection finds an endpoint without backends. The reconciler does the same later
// (observe), under the app's lease; this runs before any pass, so it writes without one: the
// update only fills an empty address for the same container, which a pass would write too.
import type { Logger } from 'pino';
import { and, eq, isNotNull, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { instances } from '../../db/schema/index.js';
import type { NetworkSpec, Runtime } from '../runtime/runtime.js';

export interface JoinNetworkOptions {
  db: Db;
  runtime: Runtime;
  network: NetworkSpec;
  log: Logger;
}

/** Joins the running instances without an address; returns how many now have one. */
export async function joinNetwork(options: JoinNetworkOptions): Promise<number> {
  const { db, runtime, network, log } = options;
  const rows = await db
    .select({ id: instances.id, containerId: instances.containerId })
    .from(instances)
    .where(and(eq(instances.desiredState, 'running'), eq(instances.observedState, 'running'), isNull(instances.address), isNotNull(instances.containerId)));
  let joined = 0;
  for (const row of rows) {
    const containerId = row.containerId as string;
    try {
      let info = await runtime.inspect(containerId);
      if (!info || info.state !== 'running') continue; // the reconciler replaces it
      if (!info.networks[network.name]) {
        await runtime.connectNetwork(containerId, network.name);
        info = await runtime.inspect(containerId);
      }
      const address = info?.networks[network.name];
      if (!address) continue;
      await db
        .update(instances)
        .set({ address, updatedAt: new Date() })
        .where(and(eq(instances.id, row.id), eq(instances.containerId, containerId), isNull(instances.address)));
      log.info({ instance: row.id, container: containerId, address }, `joined a running container to the network ${network.name}`);
      joined++;
    } catch (err) {
      // Not fatal: the reconciler joins it on its pass (drift: "an instance has no address").
      log.warn({ err, instance: row.id, container: containerId }, `cannot join a running container to the network ${network.name} yet; the reconciler tries again`);
    }
  }
  return joined;
}
