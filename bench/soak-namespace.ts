// The soak runs inside network and mount namespaces of its own, so the Docker engine, PostgreSQL
// and `pier server` it kills are its own and everything it binds is invisible to the machine:
// `npm run soak` re-executes itself under `unshare --net --mount` (the mounts dockerd makes stay
// in that namespace). Afterwards the outer process ends, by PID, whatever still runs in that
// network namespace (every such process is the soak's), and whatever of the soak's containers
// still runs (their cgroup), then removes the soak's folder.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { endContainerProcesses } from './soak-dockerd.js';

/** Set in the re-executed process: it is inside its namespaces, and where its folder is. */
export const INSIDE_ENV = 'PIER_SOAK_INSIDE';
export const DIR_ENV = 'PIER_SOAK_DIR';
/** The file (in the folder) where the inner process writes its network namespace, e.g. net:[4026532330]. */
export const NETNS_FILE = 'netns';

/** Outer side: runs `script args` in new namespaces and cleans up after it; resolves with its exit code. */
export async function runInOwnNamespaces(script: string, args: string[], log: (line: string) => void): Promise<number> {
  if (process.getuid?.() !== 0) {
    log('the soak needs root: it makes network namespaces and runs its own dockerd and PostgreSQL (sudo npm run soak)');
    return 2;
  }
  const dir = await mkdtemp(join(tmpdir(), 'pier-soak-'));
  // PostgreSQL runs as `postgres` and must reach its folder inside this one.
  await chmod(dir, 0o711);
  const child = spawn('unshare', ['--net', '--mount', '--propagation', 'private', '--', process.execPath, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, [INSIDE_ENV]: '1', [DIR_ENV]: dir },
  });
  // Ctrl-C reaches the inner process too (same process group); it stops in order. A SIGTERM sent
  // to this process alone is passed on.
  const onInt = (): void => undefined;
  const onTerm = (): void => void child.kill('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (err) => {
      log(`cannot run unshare: ${err.message} (apt-get install util-linux)`);
      resolve(2);
    });
    child.once('exit', (c, signal) => resolve(c ?? (signal === null ? 1 : 128 + signalNumber(signal))));
  });
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  const netns = (await readFile(join(dir, NETNS_FILE), 'utf8').catch(() => '')).trim();
  const left = netns ? await endNamespace(netns) : 0;
  if (left > 0) log(`ended ${left} process(es) still running in the soak's namespace`);
  if (child.pid !== undefined) await endContainerProcesses(`pier-soak-${child.pid}`);
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 500 }).catch((err: Error) => log(`could not remove ${dir}: ${err.message}`));
  return code;
}

/** SIGKILLs every process whose network namespace is `netns`; returns how many there were. */
async function endNamespace(netns: string): Promise<number> {
  let ended = 0;
  for (let round = 0; round < 20; round++) {
    let found = 0;
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      if ((await readlink(`/proc/${entry}/ns/net`).catch(() => '')) !== netns) continue;
      found++;
      try {
        process.kill(Number(entry), 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    if (round === 0) ended = found;
    if (found === 0) break;
    await delay(200);
  }
  return ended;
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1;
}
