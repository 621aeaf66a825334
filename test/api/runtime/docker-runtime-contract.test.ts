// The Docker runtime held to the Runtime contract on the real engine (busybox image).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { createDockerRuntime } from '../../../api/runtime/docker-runtime.js';
import { ensureBusyboxImage, requireDocker } from '../../support/images.js';
import { runtimeContract } from './runtime-contract.js';

const run = promisify(execFile);
const runtime = createDockerRuntime({ log: pino({ level: 'silent' }) });

runtimeContract('docker runtime', async (t) => {
  if (!(await requireDocker(t))) return null;
  await ensureBusyboxImage();
  return { runtime, image: 'pier-test/busybox:1', kill: async (id) => void (await run('docker', ['kill', id])) };
});
