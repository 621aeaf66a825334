// POST /v1/registry/gc: only an org-wide admin token of the server's own org may run it (it spans
// every org); without a registry it is 503; a dry run on the real registry answers the result.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createApi } from '../../../api/app.js';
import { createAppDeleter } from '../../../api/app-deleter.js';
import { createDeployService } from '../../../api/deploy-service.js';
import { createEdgeFeed } from '../../../api/edge-feed.js';
import { createEdgeReports } from '../../../api/edge-reports.js';
import { createEventLog } from '../../../api/event-log.js';
import { createLocalRegistry } from '../../../api/registry/local-registry.js';
import { createRegistryGate } from '../../../api/registry/registry-gate.js';
import { createRegistryGc } from '../../../api/registry/registry-gc.js';
import { createTransactions } from '../../../api/transactions.js';
import { createApp, createOrg, createToken } from '../../support/test-api.js';
import { createTestDb } from '../../support/test-db.js';
import { throwingRuntime } from '../../support/throwing-runtime.js';

async function api(t: TestContext) {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const runtime = throwingRuntime();
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  const owner = await createOrg(db, 'owner');
  const other = await createOrg(db, 'other');
  const dir = await mkdtemp(join(tmpdir(), 'pier-registry-route-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
  const registry = createLocalRegistry({ dir, log });
  t.after(() => registry.close());
  assert.deepEqual(await registry.start(), { ok: true });
  const collector = createRegistryGc({ db, registry, gate: createRegistryGate(), keep: 10, graceMs: 0, log });
  const registryGc = { run: (o: { dryRun: boolean }) => collector.run(o), ownerOrgId: () => owner };
  const deps = {
    db,
    events,
    runtime,
    deploys: createDeployService({ db, runtime, transactions, enqueue: () => {} }),
    deleter: createAppDeleter({ runtime, transactions, onDeleted: () => {} }),
    edgeReports: createEdgeReports({ db, transactions, log, enqueue: () => {} }),
    edgeFeed: createEdgeFeed({ db, log, sharedAddresses: ['127.0.0.1'] }),
    log,
    sharedAddresses: ['127.0.0.1'],
    ready: () => true,
  };
  const withRegistry = createApi({ ...deps, registryGc });
  const without = createApi(deps);
  const appId = await createApp(db, owner, 'site');
  const tokens = {
    admin: await createToken(db, owner, { scope: 'admin' }),
    deploy: await createToken(db, owner, { scope: 'deploy' }),
    appAdmin: await createToken(db, owner, { scope: 'admin', appId }),
    otherAdmin: await createToken(db, other, { scope: 'admin' }),
  };
  const gc = async (token: string, body: string = JSON.stringify({ dryRun: true }), app = withRegistry) => {
    const res = await app.request('/v1/registry/gc', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
  };
  return { tokens, gc, without };
}

test("POST /v1/registry/gc: the owner org's admin runs it; other tokens get 403; a bad body is 400; no registry is 503", async (t) => {
  const { tokens, gc, without } = await api(t);
  const ok = await gc(tokens.admin);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body, { dryRun: true, registry: 'local', removed: [], kept: 0, bytesFreed: null, blobsCollected: false });
  for (const token of [tokens.deploy, tokens.appAdmin, tokens.otherAdmin]) {
    const refused = await gc(token);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error?.code, 'E_FORBIDDEN');
  }
  assert.equal((await gc(tokens.admin, '{"dryRun": "yes"}')).status, 400);
  assert.equal((await gc(tokens.admin, 'not json')).status, 400);
  const none = await gc(tokens.admin, JSON.stringify({ dryRun: true }), without);
  assert.equal(none.status, 503);
  assert.equal(none.body.error?.code, 'E_REGISTRY_UNAVAILABLE');
});
