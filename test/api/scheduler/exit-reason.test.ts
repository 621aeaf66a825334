// describeExit(): why a container stopped, in a stable reason and words for events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeExit, type ExitReason } from '../../../api/scheduler/exit-reason.js';
import type { ContainerInfo } from '../../../api/runtime/runtime.js';

function info(more: Partial<ContainerInfo>): ContainerInfo {
  return {
    id: 'c0ffee',
    name: 'echo-web-abcde',
    image: 'sha256:1',
    labels: {},
    state: 'exited',
    exitCode: 0,
    oomKilled: false,
    error: null,
    startedAt: null,
    finishedAt: null,
    networks: {},
    ...more,
  };
}

const id = 'echo-web-abcde';

const cases: { name: string; info: ContainerInfo | null; want: ExitReason }[] = [
  {
    name: 'a container removed outside Pier',
    info: null,
    want: { reason: 'missing', exitCode: null, oom: false, message: 'echo-web-abcde: its container was removed outside Pier' },
  },
  {
    name: 'a clean exit',
    info: info({ exitCode: 0 }),
    want: { reason: 'exited', exitCode: 0, oom: false, message: 'echo-web-abcde exited with code 0' },
  },
  {
    name: 'an error exit',
    info: info({ exitCode: 3 }),
    want: { reason: 'exited', exitCode: 3, oom: false, message: 'echo-web-abcde exited with code 3' },
  },
  {
    name: 'SIGKILL',
    info: info({ exitCode: 137 }),
    want: { reason: 'killed', exitCode: 137, oom: false, message: 'echo-web-abcde exited with code 137 (killed by SIGKILL)' },
  },
  {
    name: 'SIGTERM',
    info: info({ exitCode: 143 }),
    want: { reason: 'killed', exitCode: 143, oom: false, message: 'echo-web-abcde exited with code 143 (killed by SIGTERM)' },
  },
  {
    name: 'SIGSEGV',
    info: info({ exitCode: 139 }),
    want: { reason: 'killed', exitCode: 139, oom: false, message: 'echo-web-abcde exited with code 139 (killed by SIGSEGV)' },
  },
  {
    name: 'a signal without a name',
    info: info({ exitCode: 128 + 10 }),
    want: { reason: 'killed', exitCode: 138, oom: false, message: 'echo-web-abcde exited with code 138 (killed by signal 10)' },
  },
  {
    name: 'code 128, which is no signal',
    info: info({ exitCode: 128 }),
    want: { reason: 'exited', exitCode: 128, oom: false, message: 'echo-web-abcde exited with code 128' },
  },
  {
    name: 'code 255, which is no signal',
    info: info({ exitCode: 255 }),
    want: { reason: 'exited', exitCode: 255, oom: false, message: 'echo-web-abcde exited with code 255' },
  },
  {
    name: 'an unknown exit code',
    info: info({ exitCode: null }),
    want: { reason: 'exited', exitCode: -1, oom: false, message: 'echo-web-abcde exited with code -1' },
  },
  {
    name: 'out of memory, even with the SIGKILL code',
    info: info({ exitCode: 137, oomKilled: true }),
    want: { reason: 'oom', exitCode: 137, oom: true, message: 'echo-web-abcde was killed: out of memory (OOM)' },
  },
  {
    name: 'a failed start, with Docker’s words',
    info: info({ exitCode: 127, error: 'exec: "nope": executable file not found in $PATH', state: 'created' }),
    want: { reason: 'start-failed', exitCode: 127, oom: false, message: 'echo-web-abcde failed to start: exec: "nope": executable file not found in $PATH' },
  },
];

for (const c of cases) {
  test(`describeExit words ${c.name}`, () => {
    assert.deepEqual(describeExit(id, c.info), c.want);
  });
}
