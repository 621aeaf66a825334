// Looks up one instance of an app for logs and exec: an id of another app's instance reads as
// not found, like an app the token may not see.
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { instances, type App, type Instance } from '../db/schema/index.js';
import { PierError } from './pier-error.js';

export async function findInstance(db: Db, app: App, id: string): Promise<Instance> {
  const [row] = await db
    .select()
    .from(instances)
    .where(and(eq(instances.appId, app.id), eq(instances.id, id)))
    .limit(1);
  if (!row) {
    throw new PierError('E_INSTANCE_NOT_FOUND', `app "${app.name}" has no instance "${id}"`, {
      status: 404,
      hint: `\`pier status --app ${app.name}\` lists its instances`,
    });
  }
  return row;
}

/** The container of an instance that runs now, or E_INSTANCE_NOT_RUNNING. */
export function runningContainer(app: App, instance: Instance): string {
  if (instance.containerId && instance.observedState === 'running') return instance.containerId;
  throw instanceNotRunning(app, instance);
}

export function instanceNotRunning(app: App, instance: Instance): PierError {
  return new PierError('E_INSTANCE_NOT_RUNNING', `instance ${instance.id} is not running (it is ${instance.observedState})`, {
    status: 409,
    hint: `exec into a running instance (\`pier status --app ${app.name}\` lists them); \`pier logs --app ${app.name} --instance ${instance.id}\` shows what this one wrote`,
  });
}
