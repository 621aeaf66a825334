// Rollouts with health checks, end to end: a release whose check never passes fails with the
// check's output while the previous release answers every connection; rollback restores the
// exact digest and configuration; a check that starts failing is seen, explained and acted on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { EventView, ReleaseView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, pierJson } from '../support/pier-process.js';
import { exchange } from '../support/tcp-client.js';

const exec = promisify(execFile);

interface Options {
  image: string;
  port: number;
  checkPath: string;
  greeting: string;
  timeout?: string;
}

/**
 * An echo server on 8080 and busybox httpd on 8081 (serving /www), checked over HTTP. The shell
 * stays PID 1 and exits on SIGTERM (nc as PID 1 ignores it: every stop of a replaced instance
 * would wait out Docker's 10 s before its SIGKILL).
 */
function manifest(o: Options): string {
  return `
app = "web"
image = "${o.image}"
env = { GREETING = "${o.greeting}" }

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; echo ok > /www/health; httpd -p 8081 -h /www; echo started $GREETING; nc -ll -p 8080 -e cat & wait"]
count = 2

[processes.web.check]
type = "http"
port = 8081
path = "${o.checkPath}"
interval = "300ms"
timeout = "1s"
unhealthy_threshold = 2
restart_threshold = 4

[[endpoints]]
process = "web"
port = ${o.port}
target = 8080

[deploy]
strategy = "rolling"
max_surge = 1
timeout = "${o.timeout ?? '60s'}"
drain = "1s"
`;
}


/** Opens one short connection after another until stopped; counts the ones that failed. */
function loopClient(port: number) {
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const done = (async () => {
    for (let i = 0; i < 100_000 && !stop; i++) {
      const payload = `ping ${i}\n`;
      try {
        const reply = (await exchange('127.0.0.1', port, payload)).toString();
        if (reply === payload) ok++;
        else failures.push(`#${i}: got ${JSON.stringify(reply)}`);
      } catch (err) {
        failures.push(`#${i}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { ok, failures };
    },
  };
}

async function waitUntil<T>(what: string, read: () => Promise<T>, check: (v: T) => boolean, tries = 80): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < tries; i++) {
    last = await read();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`gave up waiting for ${what}; last: ${JSON.stringify(last, null, 2)}`);
}

test('a release whose check never passes fails with the check output, the old release serving every connection; rollback restores it exactly', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const file = join(server.dir, 'pier.toml');
  const port = 9100 + Math.floor(Math.random() * 800);

  await writeFile(file, manifest({ image, port, checkPath: '/health', greeting: 'one' }));
  const v1 = await runPier(['deploy', '-c', file], server.env);
  assert.equal(v1.code, 0, v1.stderr);
  const s1 = await pierJson<StatusView>(server, ['status', '--app', 'web']);
  t.after(() => removeAppContainers(s1.app.id));
  assert.ok(s1.instances.every((i) => i.health === 'healthy'), JSON.stringify(s1.instances));

  await writeFile(file, manifest({ image, port, checkPath: '/missing', greeting: 'two', timeout: '6s' }));
  const client = loopClient(port);
  const v2 = await runPier(['deploy', '-c', file], server.env);
  const traffic = await client.finish();
  assert.equal(v2.code, 3, `expected exit 3:\n${v2.stderr}`);
  assert.match(v2.stderr, /check http :8081\/missing/);
  assert.match(v2.stderr, /HTTP 404/);
  assert.deepEqual(traffic.failures, [], `connections failed during the rollout (${traffic.ok} ok)`);
  assert.ok(traffic.ok > 10, `the client looped only ${traffic.ok} times`);

  const after = await pierJson<StatusView>(server, ['status', '--app', 'web']);
  assert.equal(after.release?.version, 1);
  assert.equal(after.deployment?.state, 'failed');

  // v3 is a good, different release; then rolling back brings v1's exact digest and config.
  await writeFile(file, manifest({ image, port, checkPath: '/health', greeting: 'three' }));
  const v3 = await runPier(['deploy', '-c', file], server.env);
  assert.equal(v3.code, 0, v3.stderr);
  const rb = await runPier(['rollback', '1', '--app', 'web'], server.env);
  assert.equal(rb.code, 0, rb.stderr);
  const { releases } = await pierJson<{ releases: (ReleaseView & { current: boolean })[] }>(server, ['releases', '--app', 'web']);
  const [newest] = releases;
  const first = releases.find((r) => r.version === 1);
  assert.equal(newest?.version, 4);
  assert.ok(newest?.current);
  assert.equal(newest?.imageDigest, first?.imageDigest);
  assert.match(newest?.description ?? '', /rollback to v1/);
  const rolled = await pierJson<StatusView>(server, ['status', '--app', 'web']);
  const running = rolled.instances.filter((i) => i.state === 'running' && i.desired === 'running');
  assert.equal(running.length, 2);
  assert.ok(running.every((i) => i.release === 4));
  const { stdout } = await exec('docker', ['logs', running[0]?.containerId ?? '']);
  assert.match(stdout, /started one/, 'v4 runs with v1 environment');
});

test('a check that starts failing takes the instance out, records why, restarts it, and describe explains it', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const file = join(server.dir, 'pier.toml');
  const port = 9100 + Math.floor(Math.random() * 800);
  await writeFile(file, manifest({ image, port, checkPath: '/health', greeting: 'one' }));
  const deployed = await runPier(['deploy', '-c', file], server.env);
  assert.equal(deployed.code, 0, deployed.stderr);
  const s = await pierJson<StatusView>(server, ['status', '--app', 'web']);
  t.after(() => removeAppContainers(s.app.id));
  const victim = s.instances[0];
  assert.ok(victim?.containerId);

  await exec('docker', ['exec', victim.containerId, 'rm', '/www/health']);
  const events = await waitUntil(
    'unhealthy and restarted events',
    () => pierJson<EventView[]>(server, ['events', '--app', 'web']),
    (evs) => evs.some((e) => e.type === 'instance.unhealthy' && e.instance === victim.id) && evs.some((e) => e.type === 'instance.restarted' && e.instance === victim.id),
  );
  const unhealthy = events.find((e) => e.type === 'instance.unhealthy');
  assert.match(unhealthy?.message ?? '', /check http :8081\/health: HTTP 404/);

  const described = await pierJson<{ instance: { healthOutput: string; state: string }; events: EventView[] }>(server, ['describe', 'instance', victim.id]);
  assert.match(described.instance.healthOutput, /HTTP 404/);
  assert.ok(described.events.some((e) => e.type === 'instance.restarted'));

  // A replacement takes its place and is healthy.
  await waitUntil(
    'two healthy instances again',
    () => pierJson<StatusView>(server, ['status', '--app', 'web']),
    (st) => st.instances.filter((i) => i.desired === 'running' && i.health === 'healthy' && i.id !== victim.id).length === 2,
  );
  const app = await pierJson<{ differences: string[] }>(server, ['describe', 'app', 'web']);
  assert.deepEqual(app.differences, []);
});
