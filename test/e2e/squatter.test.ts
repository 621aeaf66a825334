// The squatter from issue 9, through the real binary (`pier server`, whose edge reports to its API):
// with another program holding a port, a deploy that adds an endpoint on it exits 3 naming the
// port and the error, `pier status` shows the deploy failed and why, and the previous release keeps
// serving; an unrelated app on another port deploys (exit 0) and is served; once the squatter is
// gone the same deploy succeeds and serves. On today's main the deploy exited 0, status listed the
// port as served, and the edge stopped applying anything for every app.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import type { EdgeView, EventView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { squatPort } from '../support/squatter.js';
import { freePortOnBoth } from '../support/tcp-client.js';

const manifest = (app: string, image: string, tag: string, ports: number[]) => `
app = "${app}"
image = "${image}"

[processes.web]
cmd = ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 8080 -e sh -c 'echo ${tag}; cat' & wait"]
count = 1
${ports.map((p) => `\n[[endpoints]]\nprocess = "web"\nport = ${p}\ntarget = 8080\n`).join('')}
[deploy]
drain = "0s"
`;

/** The first line the app answers with through the edge ('' when nothing answers). */
function firstLine(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (line: string) => {
      s.destroy();
      resolve(line);
    };
    s.setTimeout(3_000, () => done(''));
    s.on('data', (b: Buffer) => {
      got += b.toString();
      if (got.includes('\n')) done(got.split('\n')[0] ?? '');
    });
    s.on('error', () => done(''));
    s.on('close', () => done(got.split('\n')[0] ?? ''));
  });
}

/** Bounded: the answer `want` within 10 s (a fresh container's nc takes a moment to listen). */
async function answers(port: number, want: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 40; i++) {
    last = await firstLine(port);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`port ${port} answered ${JSON.stringify(last)}, not ${JSON.stringify(want)}`);
}

/** Who listens on the port (for a failure message): `ss` says, with the process. */
async function listeningOn(port: number): Promise<string> {
  const run = promisify(execFile);
  return (await run('ss', ['-Hltnp', `sport = :${port}`]).catch((err: Error) => ({ stdout: err.message }))).stdout.trim() || 'nothing';
}

async function json<T>(server: PierServer, args: string[]): Promise<T> {
  const r = await runPier([...args, '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

test('a squatted port fails its deploy with exit 3 naming port and error; other apps deploy and serve; freed, the deploy succeeds', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const [a, b, c] = [await freePortOnBoth(), await freePortOnBoth(), await freePortOnBoth()];
  const file = (name: string) => join(server.dir, `${name}.toml`);
  const deploy = (name: string) => runPier(['deploy', '-c', file(name)], server.env, { timeoutMs: 180_000 });

  // The edge of `pier server` reports to its API.
  let edges: EdgeView[] = [];
  for (let i = 0; i < 60 && !edges.some((e) => e.live); i++) {
    edges = (await json<{ edges: EdgeView[] }>(server, ['edges'])).edges;
    if (!edges.some((e) => e.live)) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(edges.some((e) => e.live), 'the edge of pier server reports to the API');

  await writeFile(file('v1'), manifest('squat', image, 'squat-v1', [a]));
  const v1 = await deploy('v1');
  assert.equal(v1.code, 0, v1.stderr);
  assert.match(v1.stdout, new RegExp(`:${a} served on 127\\.0\\.0\\.1:${a} \\[::1\\]:${a} by the edge`));
  const squat = await json<StatusView>(server, ['status', '--app', 'squat']);
  t.after(() => removeAppContainers(squat.app.id));
  await answers(a, 'squat-v1');

  // Another program holds port b on 127.0.0.1; v2 adds an endpoint there.
  const squatter = await squatPort(t, b);
  await writeFile(file('v2'), manifest('squat', image, 'squat-v2', [a, b]));
  const refused = await deploy('v2');
  assert.equal(refused.code, 3, `deploy exits 3:\n${refused.stderr}`);
  assert.match(refused.stderr, new RegExp(`endpoint :${b} cannot be served: edge "[^"]+": cannot listen on 127\\.0\\.0\\.1:${b}: address already in use \\(EADDRINUSE\\)`));
  assert.match(refused.stderr, /another program holds the port/);
  assert.match(refused.stderr, /v1 keeps serving/);
  await answers(a, 'squat-v1');
  assert.equal(await firstLine(b), 'squatter', 'the squatter still has its port');

  const status = await runPier(['status', '--app', 'squat'], server.env);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /deployment dep_\S+ of v2: failed/);
  assert.match(status.stdout, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${b}: address already in use \\(EADDRINUSE\\)`));
  // v1's endpoint as the edge last reported it: served (a report may still be on its way).
  let after = await json<StatusView>(server, ['status', '--app', 'squat']);
  for (let i = 0; i < 50 && after.endpoints.some((e) => e.served.state === 'pending'); i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await json<StatusView>(server, ['status', '--app', 'squat']);
  }
  assert.equal(after.release?.version, 1);
  assert.deepEqual(after.endpoints.map((e) => [e.port, e.served.state]), [[a, 'served']]);
  const events = await json<EventView[]>(server, ['events', '--app', 'squat']);
  const bindFailed = events.find((e) => e.type === 'endpoint.bind_failed');
  assert.equal(bindFailed?.reason, 'EADDRINUSE');
  assert.equal(bindFailed?.data.listenPort, b);

  // An unrelated app on another port deploys and is served meanwhile.
  await writeFile(file('other'), manifest('other', image, 'other-v1', [c]));
  const other = await deploy('other');
  assert.equal(other.code, 0, other.stderr);
  const otherApp = await json<StatusView>(server, ['status', '--app', 'other']);
  t.after(() => removeAppContainers(otherApp.app.id));
  await answers(c, 'other-v1');
  await answers(a, 'squat-v1');

  // The squatter goes: the same deploy succeeds, and both ports serve v2.
  await squatter.release();
  const again = await deploy('v2');
  assert.equal(again.code, 0, `${again.stderr}\nserver log on :${b}:\n${server.stderr().split('\n').filter((l) => l.includes(`:${b}`)).slice(-20).join('\n')}\nlistening on :${b}: ${await listeningOn(b)}`);
  await answers(b, 'squat-v2');
  await answers(a, 'squat-v2');
  const served = await json<StatusView>(server, ['status', '--app', 'squat']);
  // Status lists endpoints by port.
  assert.deepEqual(served.endpoints.map((e) => [e.port, e.served.state]), [a, b].sort((x, y) => x - y).map((p) => [p, 'served']));
  const health = (await (await fetch(`${server.apiUrl}/healthz`)).json()) as { status: string; serving: { status: string } };
  assert.deepEqual([health.status, health.serving.status], ['up', 'serving']);
});
