// raiseFdLimit on a real process whose soft open-files limit is below its hard one: Node raises its
// own at start, so the prlimit path is tried on a `sleep` started under `ulimit -S -n 256`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { raiseFdLimit } from '../../proxy/fd-limit.js';
import { captureLog } from '../support/log-capture.js';

async function limitsOf(pid: number): Promise<[number, number]> {
  const line = (await readFile(`/proc/${pid}/limits`, 'utf8')).split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').slice('Max open files'.length).trim().split(/\s+/);
  return [Number(soft), Number(hard)];
}

test('a soft open-files limit below the hard one is raised with prlimit, and the log says so', async (t) => {
  const child = spawn('sh', ['-c', 'ulimit -S -n 256 && exec sleep 60'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  const pid = child.pid!;
  // Bounded: the shell execs sleep at once.
  for (let i = 0; i < 100 && (await limitsOf(pid).catch(() => [0, 0]))[0] !== 256; i++) await new Promise((r) => setTimeout(r, 20));
  const [soft, hard] = await limitsOf(pid);
  assert.equal(soft, 256);
  const { log, messages } = captureLog();
  const outcome = await raiseFdLimit(log, pid);
  assert.deepEqual(outcome, { before: { soft: 256, hard }, soft: hard, raised: true });
  assert.deepEqual(await limitsOf(pid), [hard, hard]);
  assert.equal(messages('open files limit raised to the hard limit').length, 1);

  const again = await raiseFdLimit(log, pid);
  assert.equal(again.raised, false);
  assert.equal(again.reason, 'already at the hard limit');
});
