// System events: an edge's first report and its return are edge.connected, its silence is one
// edge.disconnected (however many looks find it silent); an engine that does not answer is one
// runtime.unavailable naming why. Real database (PGlite or PostgreSQL), a real Docker client
// pointed at a socket where no engine listens.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eq, sql } from 'drizzle-orm';
import { pino } from 'pino';
import { createEdgeReports } from '../../api/edge-reports.js';
import { createEventLog } from '../../api/event-log.js';
import { createDockerRuntime } from '../../api/runtime/docker-runtime.js';
import { createSystemMonitor } from '../../api/system-monitor.js';
import { createTransactions } from '../../api/transactions.js';
import { edges } from '../../db/schema/index.js';
import { reportBody } from '../support/edge-report-body.js';
import { createOrg } from '../support/test-api.js';
import { createTestDb } from '../support/test-db.js';

test('edges connect, fall silent once, and come back; a missing engine is one runtime.unavailable', async (t) => {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const org = await createOrg(db, 'admin');
  const events = createEventLog(db);
  const transactions = createTransactions({ db, events });
  const reports = createEdgeReports({ db, transactions, log, enqueue: () => {}, systemOrg: () => org });
  const dir = await mkdtemp(join(tmpdir(), 'pier-sysmon-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const runtime = createDockerRuntime({ socketPath: join(dir, 'no-engine.sock'), log });
  const monitor = createSystemMonitor({ db, runtime, events, orgId: () => org, log, server: 'test-server' });
  const system = async () => (await events.list({ orgId: org, systemOnly: true, limit: 1000 })).map((e) => `${e.type} ${e.reason}`);

  const edge = { id: 'edge_1', name: 'front-1' };
  await reports.record(reportBody(edge, [], { applied: 3 }));
  await reports.record(reportBody(edge, [], { applied: 3 }));
  assert.deepEqual(await system(), ['edge.connected first report'], 'a report from a live edge is not news');

  await monitor.tick();
  await monitor.tick();
  const afterLooks = await system();
  assert.deepEqual(afterLooks.filter((e) => e.startsWith('runtime.')), ['runtime.unavailable E_RUNTIME_UNAVAILABLE'], 'one event for one outage');
  const [down] = await events.list({ orgId: org, type: 'runtime.unavailable' });
  assert.equal(down?.data.server, 'test-server');
  assert.match(down?.message ?? '', /does not answer/);
  assert.ok(!afterLooks.some((e) => e.startsWith('edge.disconnected')), 'a live edge is not silent');

  // Its reports stop (its last one is a minute old): one event, however many looks.
  await db.update(edges).set({ lastSeenAt: sql`now() - interval '60 seconds'` }).where(eq(edges.id, edge.id));
  await monitor.tick();
  await monitor.tick();
  const gone = await events.list({ orgId: org, type: 'edge.disconnected' });
  assert.equal(gone.length, 1);
  assert.deepEqual(gone[0]?.data.edge, edge);
  assert.equal(gone[0]?.data.appliedVersion, 3);

  await reports.record(reportBody(edge, [], { applied: 4 }));
  assert.deepEqual((await system()).filter((e) => e.startsWith('edge.')), ['edge.connected first report', 'edge.disconnected silent', 'edge.connected reporting again']);
  const [, back] = await events.list({ orgId: org, type: 'edge.connected' });
  assert.equal(back?.data.appliedVersion, 4);
});
