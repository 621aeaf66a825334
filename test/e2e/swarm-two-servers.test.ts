// Two `pier server --runtime swarm` on one PostgreSQL database, both talking to the same swarm
// manager (test/support/swarm-cluster.ts): both answer, a deploy through one converges once (one
// service, one instance row and one `instance.started` per task, both servers show the same
// rows), a killed task is recorded once, and the app is reconciled by one server at a time (the
// per-app advisory lock and lease). Runs in the PostgreSQL pass only: the embedded database belongs
// to one process. Every wait is bounded.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { EventView, StatusView } from '../../api/views.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer, pierJson } from '../support/pier-process.js';
import { requireNamespaces, startSwarmCluster } from '../support/swarm-cluster.js';

const IMAGE = 'pier-test/busybox:1';


async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false>, seconds = 90): Promise<T> {
  const deadline = Date.now() + seconds * 1_000;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await delay(300);
  }
}

interface Span {
  pid: number;
  begin: number;
  end: number;
}

/** Reconcile spans of one app from a server's debug log. */
function spans(server: PierServer, appId: string): Span[] {
  const out: Span[] = [];
  const open = new Map<number, number>();
  for (const line of server.stderr().split('\n')) {
    if (!line.includes(appId) || !line.includes('reconcile ')) continue;
    const rec = JSON.parse(line) as { msg: string; at: number; pid: number };
    if (rec.msg === 'reconcile begin') open.set(rec.pid, rec.at);
    if (rec.msg === 'reconcile end') out.push({ pid: rec.pid, begin: open.get(rec.pid) ?? rec.at, end: rec.at });
  }
  return out;
}

const serving = (s: StatusView) => s.instances.filter((i) => i.desired === 'running' && i.state === 'running' && i.health === 'healthy');

test('two swarm API servers on one PostgreSQL: both answer, a deploy converges once, one reconciles at a time', async (t) => {
  if (!process.env.DATABASE_URL) {
    t.diagnostic('needs PostgreSQL: the embedded database belongs to one process; runs in the DATABASE_URL pass of .ci/run');
    return;
  }
  if (!(await requireDocker(t)) || !(await requireNamespaces(t))) return;
  const image = await ensureBusyboxImage();
  const cluster = await startSwarmCluster(t, { images: [IMAGE] });
  const env = { DOCKER_HOST: cluster.manager.host, PIER_RUNTIME: 'swarm', PIER_SWARM_NODE_ENGINES: `${cluster.worker.address}=${cluster.worker.host}`, PIER_EDGE_IPV6: 'off' };
  const args = ['--role', 'api', '--api-listen', `${cluster.hostAddress}:0`];
  const a = await startPierServer(t, env, { args });
  const b = await startPierServer(t, env, { args, databaseUrl: a.databaseUrl });
  const file = join(a.dir, 'pier.toml');
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  await writeFile(
    file,
    `app = "tw"
image = "${image}"
[processes.web]
cmd = ["sh", "-c", "mkdir -p /www; echo ok > /www/health; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]
count = 2
[processes.web.check]
type = "http"
port = 8080
path = "/health"
interval = "300ms"
[[endpoints]]
process = "web"
port = ${port}
target = 8080
[deploy]
drain = "1s"
`,
  );
  const deployed = await runPier(['deploy', '-c', file], b.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  // Names without the app's tag (pier-tw-TAG-v1-web).
  const services = async () =>
    (await cluster.manager.docker(['service', 'ls', '--format', '{{.Name}} {{.Replicas}}']))
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^pier-tw-[0-9a-f]{6}-/, 'pier-tw-'))
      .sort();
  assert.deepEqual(await services(), ['pier-tw-v1-web 2/2'], 'one service, made once');

  // Both servers answer with the same two rows.
  const seen = await waitFor('both servers showing two healthy instances', async () => {
    const [sa, sb] = [await pierJson<StatusView>(a, ['status', '--app', 'tw']), await pierJson<StatusView>(b, ['status', '--app', 'tw'])];
    return serving(sa).length === 2 && serving(sb).length === 2 ? ([sa, sb] as const) : null;
  });
  const ids = (s: StatusView) => serving(s).map((i) => i.id).sort();
  assert.deepEqual(ids(seen[0]), ids(seen[1]));
  const started = (await pierJson<EventView[]>(a, ['events', '--app', 'tw', '--type', 'instance.started'])).map((e) => e.instance);
  assert.deepEqual(started.sort(), ids(seen[0]), 'one instance.started per task, recorded once');

  // A killed task: Swarm replaces it, and its exit is recorded once, whichever server holds the app.
  const victim = serving(seen[0]).find((i) => i.address === cluster.worker.address) ?? serving(seen[0])[0];
  assert.ok(victim?.containerId);
  await (victim.address === cluster.worker.address ? cluster.worker : cluster.manager).docker(['kill', victim.containerId]);
  await waitFor('the replacement serving', async () => {
    const s = await pierJson<StatusView>(a, ['status', '--app', 'tw']);
    return serving(s).length === 2 && serving(s).every((i) => i.id !== victim.id);
  });
  const evs = await pierJson<EventView[]>(b, ['events', '--app', 'tw']);
  assert.equal(evs.filter((e) => e.type === 'instance.exited' && e.instance === victim.id).length, 1, 'the exit recorded once');
  assert.equal(evs.filter((e) => e.type === 'instance.started').length, 3, 'the replacement recorded once');
  assert.equal(evs.filter((e) => e.type === 'deploy.succeeded').length, 1);
  assert.deepEqual(await services(), ['pier-tw-v1-web 2/2'], 'still one service at its count');

  // Never two reconciles of the app at once, across both servers.
  const appId = seen[0].app.id;
  const all = [...spans(a, appId), ...spans(b, appId)].sort((x, y) => x.begin - y.begin);
  assert.ok(all.length > 0, 'the reconcile spans are logged');
  for (let i = 1; i < all.length; i++) {
    const prev = all[i - 1] as Span;
    const cur = all[i] as Span;
    assert.ok(cur.begin >= prev.end, `reconciles overlap: ${JSON.stringify(prev)} and ${JSON.stringify(cur)}`);
  }
  t.diagnostic(`reconcile passes: ${all.length}, by ${new Set(all.map((s) => s.pid)).size} server process(es)`);

  const deleted = await runPier(['apps', 'delete', 'tw', '--yes', '--wait', '60'], a.env);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(await services(), []);
});
