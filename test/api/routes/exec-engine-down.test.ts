// An exec into an instance the row says exited, while the engine is down, answers 503
// E_RUNTIME_UNAVAILABLE (retryable: the engine took its containers down with it); with the engine
// up, the same request is 409 E_INSTANCE_NOT_RUNNING.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eq } from 'drizzle-orm';
import { pino } from 'pino';
import { createApi } from '../../../api/app.js';
import { apps, instances } from '../../../db/schema/index.js';
import { createControlPlane, echoManifest } from '../../support/memory-control-plane.js';

test('exec into a stopped instance: 503 E_RUNTIME_UNAVAILABLE while the engine is down, 409 once it is up', async (t) => {
  const cp = await createControlPlane(t);
  const { app } = await cp.deploy(echoManifest('downexec', { count: 1, port: 19418 }));
  const running = async () => (await cp.db.select().from(instances).where(eq(instances.appId, app.id))).filter((i) => i.observedState === 'running');
  await cp.converge(app.id, async () => (await running()).length === 1, 'one running instance');
  const [inst] = await running();
  assert.ok(inst);
  // What the reconciler records when the engine stopped the container on its way down.
  await cp.db.update(instances).set({ observedState: 'exited' }).where(eq(instances.id, inst.id));
  const api = createApi({ db: cp.db, events: cp.events, runtime: cp.runtime, deploys: cp.deploys, deleter: cp.deleter, edgeFeed: cp.edgeFeed, edgeReports: cp.edgeReports, log: pino({ level: 'silent' }), sharedAddresses: [], ready: () => true });
  const [named] = await cp.db.select().from(apps).where(eq(apps.id, app.id));
  const exec = async () => {
    const res = await api.request(`/v1/apps/${named?.name}/instances/${inst.id}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${cp.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cmd: ['true'] }),
    });
    return { status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code };
  };
  cp.runtime.setAvailable(false);
  assert.deepEqual(await exec(), { status: 503, code: 'E_RUNTIME_UNAVAILABLE' });
  cp.runtime.setAvailable(true);
  assert.deepEqual(await exec(), { status: 409, code: 'E_INSTANCE_NOT_RUNNING' });
});
