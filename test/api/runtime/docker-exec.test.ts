// The Docker runtime's exec and log streaming against the real engine: exit codes and separate
// streams, the output cap, the timeout, a TTY session, and a followed log that ends on abort.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createEngineErrors } from '../../../api/runtime/docker-errors.js';
import { engineFailure } from '../../../api/runtime/docker-exec.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { EXEC_OUTPUT_LIMIT, LABELS, type LogLine } from '../../../api/runtime/runtime.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';

const runtime = createDockerRuntime({ log: pino({ level: 'silent' }) });

/** A busybox container running `script`, removed when the test ends. */
async function start(t: TestContext, script: string): Promise<string> {
  const image = await ensureBusyboxImage();
  const name = `pier-test-${process.pid}-${randomBytes(4).toString('hex')}-exec`;
  const labels = { [LABELS.managed]: 'true', [LABELS.app]: `test-${process.pid}`, [LABELS.process]: 'web', [LABELS.instance]: name };
  const id = await runtime.run({ name, image, cmd: ['sh', '-c', script], labels });
  t.after(() => runtime.remove(id));
  return id;
}

test('exec returns the exit code with stdout and stderr apart, and caps long output', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await start(t, 'exec sleep 3600');
  const r = await runtime.exec(id, ['sh', '-c', 'echo out; echo err >&2; exit 7']);
  assert.deepEqual(r, { exitCode: 7, stdout: 'out\n', stderr: 'err\n', truncated: false });
  const big = await runtime.exec(id, ['sh', '-c', `head -c ${EXEC_OUTPUT_LIMIT + 5000} /dev/zero`]);
  assert.equal(big.exitCode, 0);
  assert.equal(big.stdout.length, EXEC_OUTPUT_LIMIT);
  assert.equal(big.truncated, true);
});

test('an exec the engine could not start because it lost its containerd is E_RUNTIME_UNAVAILABLE, not exit code 126', () => {
  const errors = createEngineErrors('/run/x/docker.sock');
  // What dockerd answered to the soak while it was stopping (found by `npm run soak`).
  const closing = 'grpc: the client connection is closing: context canceled\r\n';
  const err = engineFailure({ exitCode: 126, pid: 0 }, closing, errors);
  assert.equal(err?.code, 'E_RUNTIME_UNAVAILABLE');
  assert.equal(err?.status, 503);
  const restarting = 'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing dial unix /run/x/containerd.sock: connect: connection refused": unavailable\r\n';
  assert.equal(engineFailure({ exitCode: 126, pid: 0 }, restarting, errors)?.code, 'E_RUNTIME_UNAVAILABLE');
  // A process that ran and printed the same words, and a start failure of the command itself, are answers.
  assert.equal(engineFailure({ exitCode: 126, pid: 4242 }, closing, errors), null);
  const missing = 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown\r\n';
  assert.equal(engineFailure({ exitCode: 126, pid: 0 }, missing, errors), null);
});

test('a command that cannot start keeps Docker\'s exit code and words', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await start(t, 'exec sleep 3600');
  const r = await runtime.exec(id, ['pier-no-such-command']);
  assert.equal(r.exitCode, 126);
  assert.match(r.stdout, /executable file not found/);
});

test('exec gives up after its timeout, and refuses a stopped container', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await start(t, 'exec sleep 3600');
  await assert.rejects(runtime.exec(id, ['sleep', '30'], { timeoutMs: 300 }), { code: 'E_EXEC_TIMEOUT' });
  await runtime.stop(id, 0);
  await assert.rejects(runtime.exec(id, ['true']), { code: 'E_CONTAINER_NOT_RUNNING', status: 409 });
});

test('an interactive session runs under a TTY, takes input and reports the exit code', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await start(t, 'exec sleep 3600');
  const session = await runtime.execInteractive(id, ['sh'], { tty: true, cols: 100, rows: 30 });
  let output = '';
  session.stream.on('data', (b: Buffer) => (output += b.toString()));
  session.stream.write('stty size; echo $((6*7))\n');
  for (let i = 0; i < 100 && !/^42\r?$/m.test(output); i++) await delay(50);
  await session.resize(120, 40);
  session.stream.write('stty size; exit 4\n');
  assert.equal(await session.wait(), 4);
  assert.match(output, /^30 100\r?$/m);
  assert.match(output, /^42\r?$/m);
  assert.match(output, /^40 120\r?$/m);
});

test('a followed log yields lines written later and ends when aborted', async (t) => {
  if (!(await requireDocker(t))) return;
  const id = await start(t, 'echo first; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done');
  const abort = new AbortController();
  const seen: LogLine[] = [];
  for await (const line of runtime.streamLogs(id, { follow: true, signal: abort.signal })) {
    seen.push(line);
    if (line.line === 'tick 3') abort.abort();
  }
  // stdout and stderr travel through separate pipes: their relative order is not promised.
  assert.ok(seen.some((l) => l.stream === 'stderr' && l.line === 'oops'), seen.map((l) => l.line).join(','));
  assert.equal(seen.find((l) => l.stream === 'stdout')?.line, 'first');
  assert.equal(seen.at(-1)?.line, 'tick 3');
  // Engine times have nanoseconds and Dates milliseconds: the next millisecond includes tick 3.
  const until = new Date((seen.at(-1)?.time.getTime() ?? 0) + 1);
  const bounded = [];
  for await (const line of runtime.streamLogs(id, { follow: false, until, signal: new AbortController().signal })) bounded.push(line.line);
  assert.ok(bounded.includes('tick 3') && !bounded.includes('tick 5'), bounded.join(','));
});
