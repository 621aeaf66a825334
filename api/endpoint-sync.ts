// Keeps an app's endpoint rows equal to the endpoints of the release that serves, so the
// route table follows deploys and reverted rollouts alike. Ids stay stable per port.
import { and, eq, notInArray } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { endpoints } from '../db/schema/index.js';
import { newId } from './ids.js';
import type { Manifest } from './manifest.js';

export async function syncEndpoints(db: Db, appId: string, manifest: Manifest | null): Promise<void> {
  const wanted = manifest?.endpoints ?? [];
  const ports = wanted.map((e) => e.port);
  await db
    .delete(endpoints)
    .where(ports.length ? and(eq(endpoints.appId, appId), notInArray(endpoints.port, ports)) : eq(endpoints.appId, appId));
  for (const e of wanted) {
    const values = { process: e.process, targetPort: e.target, proxyProtocol: e.proxy_protocol, updatedAt: new Date() };
    await db
      .insert(endpoints)
      .values({ id: newId('ep'), appId, port: e.port, ...values })
      .onConflictDoUpdate({ target: [endpoints.appId, endpoints.port], set: values });
  }
}
