// Restarts without dropped traffic (issue 9): a real `pier server` (supervisor, API child, edge
// worker) with a deployed busybox echo app, and a probe loop of 4 connections a second through its
// endpoint, across 5 API restarts (SIGHUP), 5 edge restarts (SIGUSR2, workers rolled) and the API
// process killed outright: no connection refused or reset. Stopping the supervisor stops every child.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { runPier, startPierServer, type PierServer } from '../support/pier-process.js';
import { exchange, freePortOnBoth } from '../support/tcp-client.js';

const manifest = (image: string, port: number) => `
app = "restarts"
image = "${image}"

[processes.echo]
cmd = ["nc", "-ll", "-p", "8080", "-e", "cat"]
count = 1

[[endpoints]]
process = "echo"
port = ${port}
target = 8080
proxy_protocol = "none"
`;

interface EdgeStatus {
  version: number | null;
  lastError: string | null;
  workers: { pid: number; version: number | null }[];
}

/** Polls (bounded: `tries` × 250 ms) until `check` resolves true. */
async function until(what: string, check: () => Promise<boolean> | boolean, tries = 240): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await delay(250);
  }
  assert.fail(`gave up waiting for ${what}`);
}

/** The pids of the API processes the supervisor reported ready, in order. */
function apiPids(server: PierServer): number[] {
  return [...server.stderr().matchAll(/"apiPid":(\d+),"apiUrl":"[^"]*","msg":"api process ready"/g)].map((m) => Number(m[1]));
}

/** The edge admin URL `pier server` prints after its API line (bounded wait). */
async function edgeAdminUrl(server: PierServer): Promise<string> {
  let url: string | undefined;
  await until('the edge admin line', () => (url = /edge admin on (http:\/\/\S+)/.exec(server.stdout())?.[1]) !== undefined, 120);
  return url!;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One exchange every 250 ms until stopped; outcomes counted by error code (bounded: 10 s per probe). */
function probeLoop(port: number): { stop(): Promise<Map<string, number>> } {
  const outcomes = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    for (let i = 0; running && i < 4 * 60 * 10; i++) {
      const started = Date.now();
      const payload = `probe ${i}\n`;
      let outcome = 'ok';
      try {
        const reply = await Promise.race([
          exchange('127.0.0.1', port, payload).then((b) => b.toString()),
          delay(10_000).then(() => Promise.reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }))),
        ]);
        if (reply !== payload) outcome = `reply ${JSON.stringify(reply.slice(0, 30))}`;
      } catch (err) {
        outcome = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      await delay(Math.max(0, 250 - (Date.now() - started)));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return outcomes;
    },
  };
}

test('pier server: 5 API restarts, 5 edge restarts and a killed API process refuse and reset no probe; SIGTERM stops every process', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const adminUrl = await edgeAdminUrl(server);
  const edgeStatus = async (): Promise<EdgeStatus> => (await (await fetch(`${adminUrl}/status`)).json()) as EdgeStatus;
  const port = await freePortOnBoth();
  const file = join(server.dir, 'pier.toml');
  await writeFile(file, manifest(image, port));
  const deploy = await runPier(['deploy', '-c', file, '--json'], server.env);
  assert.equal(deploy.code, 0, `deploy failed:\n${deploy.stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  const appId = (JSON.parse((await runPier(['status', '--app', 'restarts', '--json'], server.env)).stdout) as { app: { id: string } }).app.id;
  t.after(() => removeAppContainers(appId));
  // The busybox nc may take a moment to listen after its container starts.
  await until('the app to answer through the edge', async () => (await exchange('127.0.0.1', port, 'hello\n')).toString() === 'hello\n', 80);

  const probes = probeLoop(port);
  for (let i = 0; i < 5; i++) {
    const before = apiPids(server).length;
    process.kill(server.pid, 'SIGHUP');
    await until(`API restart ${i + 1}`, () => apiPids(server).length === before + 1);
    // The edge re-attaches to the feed of the new API process.
    await until(`the edge to follow the new API after restart ${i + 1}`, async () => !/api unreachable|feed lost|closed the feed/.test((await edgeStatus()).lastError ?? ''));
  }
  for (let i = 0; i < 5; i++) {
    const before = (await edgeStatus()).workers.map((w) => w.pid);
    process.kill(server.pid, 'SIGUSR2');
    await until(`edge restart ${i + 1}`, async () => {
      const now = await edgeStatus();
      return now.workers.length === before.length && now.workers.every((w) => !before.includes(w.pid) && w.version === now.version);
    });
  }
  // Not asked to: the API process dies. The edge serves on and the supervisor starts a new one.
  const victim = apiPids(server).at(-1)!;
  process.kill(victim, 'SIGKILL');
  await until('a new API process after the kill', () => apiPids(server).length >= 7 && apiPids(server).at(-1) !== victim);
  await delay(2000);
  const outcomes = await probes.stop();
  const failures = [...outcomes].filter(([outcome]) => outcome !== 'ok');
  assert.deepEqual(failures, [], `probes: ${JSON.stringify([...outcomes])}`);
  assert.ok((outcomes.get('ok') ?? 0) >= 20, `probes: ${JSON.stringify([...outcomes])}`);
  t.diagnostic(`probes: ${JSON.stringify([...outcomes])} across 5 API restarts, 5 edge rolls and one API kill`);

  // The API that came back works (same port, same token).
  const status = await runPier(['status', '--app', 'restarts', '--json'], server.env);
  assert.equal(status.code, 0, status.stderr);

  // SIGTERM: the supervisor stops the API, drains the edge and exits 0; no child is left.
  const children = [apiPids(server).at(-1)!, ...(await edgeStatus()).workers.map((w) => w.pid)];
  assert.ok(children.every(alive));
  await server.stop();
  assert.deepEqual(server.ended(), { code: 0, signal: null }, server.stderr().slice(-3000));
  await until('every child to be gone', () => !children.some(alive), 40);
  await assert.rejects(exchange('127.0.0.1', port, 'x'), { code: 'ECONNREFUSED' });
});

test('a supervisor killed outright takes its API process and edge workers with it', async (t) => {
  const server = await startPierServer(t);
  const adminUrl = await edgeAdminUrl(server);
  const workers = ((await (await fetch(`${adminUrl}/status`)).json()) as EdgeStatus).workers.map((w) => w.pid);
  const children = [apiPids(server).at(-1)!, ...workers];
  assert.equal(children.length, 2);
  assert.ok(children.every(alive));
  process.kill(server.pid, 'SIGKILL');
  // Their IPC channel to the supervisor closes: each stops by itself.
  await until('the API process and the edge worker to end', () => !children.some(alive), 120);
});
