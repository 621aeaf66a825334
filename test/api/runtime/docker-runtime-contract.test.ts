// The Docker runtime held to the Runtime contract on the real engine (busybox image).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { DEFAULT_NETWORK, DEFAULT_NETWORK_SUBNET } from '../../../api/config.js';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { LABELS } from '../../../api/runtime/runtime.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';
import { runtimeContract } from './runtime-contract.js';

const run = promisify(execFile);
const runtime = createDockerRuntime({ log: pino({ level: 'silent' }) });

runtimeContract('docker runtime', async (t) => {
  if (!(await requireDocker(t))) return null;
  await ensureBusyboxImage();
  // The network every installation on this engine shares: the one `pier server` makes by default.
  const network = { name: DEFAULT_NETWORK, subnet: DEFAULT_NETWORK_SUBNET, labels: { [LABELS.managed]: 'true' } };
  return {
    runtime,
    image: 'pier-test/busybox:1',
    network,
    kill: async (id) => void (await run('docker', ['kill', id])),
    removeNetwork: async (name) => void (await run('docker', ['network', 'rm', name]).catch(() => undefined)),
  };
});
