// `pier logs` and `pier exec` end to end: a real `pier server`, real Docker and the real CLI —
// logs merged across instances and releases (a failed deploy's included), grep, follow, one-shot
// exec with its exit code, and interactive exec under a pseudo-terminal and with piped input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { LogLineView, StatusView } from '../../api/views.js';
import { removeAppContainers } from '../support/containers.js';
import { ensureBusyboxImage, requireDocker } from '../support/images.js';
import { PIER_BIN, runPier, startPierServer, type CliResult, type PierServer } from '../support/pier-process.js';

const manifest = (image: string, script: string) => `
app = "chatter"
image = "${image}"

[processes.talk]
cmd = ["sh", "-c", ${JSON.stringify(script)}]
count = 2
`;

const GOOD = 'echo hello from v1; echo warming up >&2; exec sleep 3600';
const BROKEN = 'echo v2 cannot start: missing DATABASE_URL >&2; exit 1';

async function status(server: PierServer): Promise<StatusView> {
  const r = await runPier(['status', '--app', 'chatter', '--json'], server.env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as StatusView;
}

async function logs(server: PierServer, ...args: string[]): Promise<LogLineView[]> {
  const r = await runPier(['logs', '--app', 'chatter', '--json', ...args], server.env);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLineView);
}

/** Runs a command with `input` on its stdin, kept open until the command exits (bounded). */
function runWithInput(command: string, args: string[], env: NodeJS.ProcessEnv, input: string, timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.write(input);
  });
}

test('pier logs and pier exec work on a deployed app, and a failed release keeps its lines', async (t) => {
  if (!(await requireDocker(t))) return;
  const image = await ensureBusyboxImage();
  const server = await startPierServer(t);
  const file = join(server.dir, 'pier.toml');
  await writeFile(file, manifest(image, GOOD));
  const first = await runPier(['deploy', '-c', file], server.env);
  assert.equal(first.code, 0, `deploy failed:\n${first.stderr}\nserver log:\n${server.stderr().slice(-3000)}`);
  const v1 = await status(server);
  t.after(() => removeAppContainers(v1.app.id));
  const running = v1.instances.filter((i) => i.state === 'running');
  assert.equal(running.length, 2, JSON.stringify(v1.instances));
  const [one, two] = running.map((i) => i.id) as [string, string];

  await t.test('logs --json tags every line with its instance, process, release and stream', async () => {
    let lines: LogLineView[] = [];
    // The containers may not have written their first lines yet right after the deploy.
    for (let i = 0; i < 40 && lines.filter((l) => l.line === 'hello from v1').length < 2; i++) {
      lines = await logs(server);
      await new Promise((r) => setTimeout(r, 250));
    }
    const hellos = lines.filter((l) => l.line === 'hello from v1');
    assert.deepEqual(hellos.map((l) => l.instance).sort(), [one, two].sort());
    for (const l of hellos) assert.deepEqual([l.process, l.release, l.stream], ['talk', 1, 'stdout']);
    assert.ok(lines.some((l) => l.line === 'warming up' && l.stream === 'stderr'), JSON.stringify(lines));
    const times = lines.map((l) => Date.parse(l.time));
    assert.deepEqual(times, [...times].sort((a, b) => a - b), 'lines are merged in time order');

    const text = await runPier(['logs', '--app', 'chatter', '--instance', one], server.env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^\\S+Z ${one} v1 \\| hello from v1$`, 'm'));
    assert.match(text.stdout, new RegExp(`^\\S+Z ${one} v1 ! warming up$`, 'm'));
    assert.doesNotMatch(text.stdout, new RegExp(two));
  });

  await t.test('exec prints stdout and stderr on their own streams and exits with the command’s code', async () => {
    const r = await runPier(['exec', '--app', 'chatter', one, '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'], server.env);
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    const ok = await runPier(['exec', '--app', 'chatter', one, '--', 'cat', '/proc/1/cmdline'], server.env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /sleep/);
  });

  await t.test('logs -f prints the backlog, then lines written later', async () => {
    const child = spawn(process.execPath, [PIER_BIN, 'logs', '--app', 'chatter', '--instance', one, '-f', '--json'], { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => void child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const seen = async (text: string) => {
      for (let i = 0; i < 300 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(out.includes(text), `no "${text}" in logs -f:\n${out}\n${err}`);
    };
    await seen('hello from v1');
    const write = await runPier(['exec', '--app', 'chatter', one, '--', 'sh', '-c', 'echo written later > /proc/1/fd/1'], server.env);
    assert.equal(write.code, 0, write.stderr);
    await seen('written later');
    const late = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLineView).find((l) => l.line === 'written later');
    assert.equal(late?.instance, one);
    assert.equal(out.split('written later').length, 2, 'the line is printed once');
    // The server notices the client is gone and closes its Docker log streams.
    child.kill('SIGINT');
    for (let i = 0; i < 100 && !server.stderr().includes('"log follow ended"'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(server.stderr(), /"msg":"log follow ended"/);
  });

  await t.test('exec -it runs a shell under a pseudo-terminal and exits with its code', async () => {
    const command = `${process.execPath} ${PIER_BIN} exec -it --app chatter ${one} sh`;
    const r = await runWithInput('script', ['-qec', command, '/dev/null'], server.env, 'echo $((6*7))\nexit 3\n');
    assert.equal(r.code, 3, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /^42\r?$/m);
  });

  await t.test('exec -it streams piped input, and without a terminal or piped input fails fast', async () => {
    const piped = await runWithInput(process.execPath, [PIER_BIN, 'exec', '-it', '--app', 'chatter', one], server.env, 'echo $((6*7))\nexit 3\n');
    assert.equal(piped.code, 3, piped.stderr);
    assert.match(piped.stdout, /^42\r?$/m);
    const none = await runPier(['exec', '-it', '--app', 'chatter', one], server.env, { timeoutMs: 30_000 });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /E_NO_TTY/);
  });

  await t.test('the API streams followed logs as ndjson and speaks the documented WebSocket protocol', async () => {
    const abort = new AbortController();
    const res = await fetch(`${server.apiUrl}/v1/apps/chatter/logs?follow=1&instance=${one}`, { headers: { authorization: `Bearer ${server.token}` }, signal: abort.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/x-ndjson/);
    abort.abort();

    const url = `${server.apiUrl.replace('http', 'ws')}/v1/apps/chatter/instances/${one}/exec/ws?cmd=sh&cols=100&rows=30`;
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${server.token}` } });
    let output = '';
    const texts: string[] = [];
    ws.on('message', (data: Buffer, binary: boolean) => (binary ? (output += data.toString()) : texts.push(data.toString())));
    const closed = new Promise<number>((resolve) => ws.once('close', (code: number) => resolve(code)));
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send(Buffer.from('stty size\n'));
    for (let i = 0; i < 100 && !/^30 100\r?$/m.test(output); i++) await new Promise((r) => setTimeout(r, 50));
    ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
    ws.send(Buffer.from('stty size; exit 5\n'));
    assert.equal(await closed, 1000);
    assert.match(output, /^30 100\r?$/m);
    assert.match(output, /^40 120\r?$/m);
    assert.deepEqual(texts.map((m) => JSON.parse(m) as unknown), [{ type: 'exit', code: 5 }]);

    const refused = new WebSocket(url);
    refused.on('error', () => undefined);
    const status = await new Promise<number>((resolve) =>
      refused.once('unexpected-response', (req, r) => {
        resolve(r.statusCode ?? 0);
        req.destroy();
      }),
    );
    assert.equal(status, 401, 'a WebSocket without a bearer token is refused');
  });

  await t.test('a failed release’s instances keep their lines, tagged with their release', async () => {
    await writeFile(file, manifest(image, BROKEN));
    const failed = await runPier(['deploy', '-c', file], server.env);
    assert.equal(failed.code, 3, failed.stderr);
    const lines = await logs(server);
    const v2 = lines.filter((l) => l.line === 'v2 cannot start: missing DATABASE_URL');
    assert.ok(v2.length >= 1, JSON.stringify(lines, null, 1));
    for (const l of v2) assert.deepEqual([l.release, l.stream, l.process], [2, 'stderr', 'talk']);
    assert.ok(lines.some((l) => l.release === 1 && l.line === 'hello from v1'), 'v1 lines are still there');

    const stopped = v2[0]?.instance ?? '';
    const refused = await runPier(['exec', '--app', 'chatter', stopped, '--', 'true'], server.env);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /E_INSTANCE_NOT_RUNNING/);
    assert.match(refused.stderr, /hint: .*pier logs/);
    const unknown = await runPier(['exec', '--app', 'chatter', 'chatter-talk-nope', '--', 'true'], server.env);
    assert.match(unknown.stderr, /E_INSTANCE_NOT_FOUND/);
    const unknownIt = await runWithInput(process.execPath, [PIER_BIN, 'exec', '-it', '--app', 'chatter', 'chatter-talk-nope'], server.env, '');
    assert.match(unknownIt.stderr, /E_INSTANCE_NOT_FOUND/);
  });

  await t.test('--grep keeps matching lines only, and a bad pattern is a usage error', async () => {
    const matching = await logs(server, '--grep', 'cannot st(a|o)rt');
    assert.ok(matching.length >= 1);
    assert.ok(matching.every((l) => l.line.includes('cannot start')), JSON.stringify(matching));
    const bad = await runPier(['logs', '--app', 'chatter', '--grep', 'unclosed('], server.env);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /E_BAD_REQUEST/);
    assert.match(bad.stderr, /regular expression/);
    const since = await runPier(['logs', '--app', 'chatter', '--since', 'yesterday'], server.env);
    assert.equal(since.code, 2, since.stderr);
    const recent = await logs(server, '--since', '10m', '--process', 'talk');
    assert.ok(recent.length >= 3);
  });
});
