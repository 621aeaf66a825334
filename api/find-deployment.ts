// Looks up a deployment with its app and release version, for the token's org; one of an app
// the token may not see reads as not found.
import { and, eq } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { apps, deployments, releases, type App, type Deployment } from '../db/schema/index.js';
import type { AuthContext } from './auth.js';
import { PierError } from './pier-error.js';

export async function findDeployment(db: Db, auth: AuthContext, id: string): Promise<{ dep: Deployment; app: App; version: number }> {
  const [row] = await db
    .select({ dep: deployments, app: apps, version: releases.version })
    .from(deployments)
    .innerJoin(apps, eq(apps.id, deployments.appId))
    .innerJoin(releases, eq(releases.id, deployments.releaseId))
    .where(and(eq(deployments.id, id), eq(apps.orgId, auth.orgId)));
  if (!row || (auth.appId !== null && auth.appId !== row.app.id)) {
    throw new PierError('E_DEPLOYMENT_NOT_FOUND', `there is no deployment "${id}"`, { status: 404, hint: '`pier status` shows each app\'s latest deployment' });
  }
  return row;
}
