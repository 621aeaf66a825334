// Crash-loop backoff is applied as announced (issue 9, defect 5): the pass that sees an exit
// counts it before planning, so the replacement's start waits for the delay that the
// instance.crash-loop event announces. In-memory runtime; every container of the app is crashed
// moments after it starts; the scheduler runs as the server runs it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { and, asc, eq } from 'drizzle-orm';
import { events } from '../../../db/schema/index.js';
import { LABELS } from '../../../api/runtime/runtime.js';
import { createControlPlane, IMAGE } from '../../support/memory-control-plane.js';

const MANIFEST = `app = "loopy"
image = "${IMAGE}"
[processes.web]
cmd = ["sleep", "3600"]
count = 1
[deploy]
drain = "0s"`;

test('starts after a crash-loop announcement wait until the announced time, every time', async (t) => {
  const cp = await createControlPlane(t, { scheduled: true });
  cp.scheduler.start();
  const { app } = await cp.deploy(MANIFEST);
  const eventsOf = (type: string) =>
    cp.db.select().from(events).where(and(eq(events.appId, app.id), eq(events.type, type))).orderBy(asc(events.id));
  await cp.converge(app.id, async () => (await eventsOf('deploy.succeeded')).length === 1, 'the rollout');

  // From now on every container of the app dies 20 ms after it starts (exit code 1).
  const abort = new AbortController();
  t.after(() => abort.abort());
  void (async () => {
    for await (const e of cp.runtime.events(abort.signal)) {
      if (e.type === 'start' && e.labels[LABELS.app] === app.id) setTimeout(() => cp.runtime.crash(e.containerId, { exitCode: 1 }), 20);
    }
  })().catch(() => undefined);
  const [first] = await cp.runtime.list({ [LABELS.app]: app.id });
  assert.ok(first);
  cp.runtime.crash(first.id, { exitCode: 1 });

  // Two backoffs: 2 s after the third exit, 4 s after the fourth, and the start after each. The
  // loop goes on meanwhile (8 s, 16 s, ...): wait for the first two to be followed by a start,
  // which stays true however late this check runs on a loaded machine.
  const untilOf = (loop: { data: Record<string, unknown> }) => new Date(String(loop.data.until));
  let loops: Awaited<ReturnType<typeof eventsOf>> = [];
  let starts: Awaited<ReturnType<typeof eventsOf>> = [];
  const deadline = Date.now() + 60_000;
  for (let i = 0; i < 1200 && Date.now() < deadline; i++) {
    loops = await eventsOf('instance.crash-loop');
    starts = await eventsOf('instance.started');
    if (loops.length >= 2 && loops.slice(0, 2).every((l) => starts.some((s) => s.time >= untilOf(l)))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(loops.length >= 2, `two crash-loop announcements, got ${loops.length}`);
  for (const [n, loop] of loops.entries()) {
    const until = untilOf(loop);
    // The documented delay: 2 s after the third exit in 60 s, doubling, at most 60 s.
    const delayMs = Math.min(2_000 * 2 ** (Number(loop.data.exits) - 3), 60_000);
    const lastExit = new Date(until.getTime() - delayMs);
    const early = starts.filter((s) => s.time > lastExit && s.time < until);
    assert.deepEqual(
      early.map((s) => s.time.toISOString()),
      [],
      `"${loop.message}" (announced ${loop.time.toISOString()}, last exit ${lastExit.toISOString()}, until ${until.toISOString()}): no start may come before ${until.toISOString()}`,
    );
    // A later announcement may still be waiting for its time: the first two must have come.
    if (n < 2) assert.ok(starts.some((s) => s.time >= until), `a start after ${until.toISOString()}`);
  }
  abort.abort();
});
