// Where a tunnel (`pier port-forward`, `pier connect`) goes: REMOTE is an endpoint's port (public or
// private), reached at its target port on a running instance of its process, with the PROXY header
// it asks for; or, with an instance named, a port of that container directly (no PROXY header).
// The token needs the `connect` right on the app; an app it may not see is not found.
import { and, eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { endpoints, instances, type App, type Endpoint, type Instance } from '../db/schema/index.js';
import { findApp, requireScope, type AuthContext } from './auth.js';
import { findInstance, instanceNotRunning } from './find-instance.js';
import { PierError } from './pier-error.js';

export interface TunnelTarget {
  app: App;
  /** The endpoint REMOTE names, or null for a container port of a named instance. */
  endpoint: Endpoint | null;
  instance: Instance;
  /** The container's address on Pier's network and the port there. */
  address: string;
  port: number;
  proxyProtocol: Endpoint['proxyProtocol'];
}

export async function resolveTunnelTarget(db: Db, auth: AuthContext, appName: string, remote: number, instanceId: string | undefined): Promise<TunnelTarget> {
  requireScope(auth, 'connect');
  const app = await findApp(db, auth, appName);
  const [endpoint] = await db.select().from(endpoints).where(and(eq(endpoints.appId, app.id), eq(endpoints.port, remote)));
  if (!endpoint && instanceId === undefined) {
    throw new PierError('E_ENDPOINT_NOT_FOUND', `${app.name} has no endpoint on port ${remote}`, {
      status: 404,
      hint: `\`pier status --app ${app.name}\` lists its endpoints; to reach a container port that is no endpoint, name the instance too`,
    });
  }
  const instance = instanceId !== undefined ? await findInstance(db, app, instanceId) : await pickInstance(db, app, endpoint as Endpoint);
  if (endpoint && instance.process !== endpoint.process) {
    throw new PierError('E_BAD_REQUEST', `instance ${instance.id} runs process "${instance.process}", and endpoint :${remote} goes to "${endpoint.process}"`, {
      status: 400,
      hint: `name an instance of "${endpoint.process}", or none (Pier picks one)`,
    });
  }
  if (instance.observedState !== 'running' || instance.desiredState !== 'running' || !instance.address) throw instanceNotRunning(app, instance);
  return {
    app,
    endpoint: endpoint ?? null,
    instance,
    address: instance.address,
    port: endpoint ? endpoint.targetPort : remote,
    proxyProtocol: endpoint ? endpoint.proxyProtocol : 'none',
  };
}

/** A running, ready instance of the endpoint's process, a different one at random per tunnel. */
async function pickInstance(db: Db, app: App, endpoint: Endpoint): Promise<Instance> {
  const ready = await db
    .select()
    .from(instances)
    .where(
      and(
        eq(instances.appId, app.id),
        eq(instances.process, endpoint.process),
        eq(instances.desiredState, 'running'),
        eq(instances.observedState, 'running'),
        inArray(instances.health, ['none', 'healthy']),
      ),
    );
  const withAddress = ready.filter((i) => i.address);
  const pick = withAddress[Math.floor(Math.random() * withAddress.length)];
  if (!pick) {
    throw new PierError('E_NO_RUNNING_INSTANCE', `no instance of ${app.name}'s process "${endpoint.process}" runs and is ready, so :${endpoint.port} leads nowhere`, {
      status: 409,
      hint: `\`pier status --app ${app.name}\` shows its instances; \`pier describe app ${app.name}\` says why none runs`,
    });
  }
  return pick;
}
