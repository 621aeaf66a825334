// The soak's own Docker engine, which it kills and restarts (never the machine's): dockerd with
// its own data root, exec root, pidfile, unix socket and config file in the soak's folder, the vfs
// storage driver, and the default bridge on 198.18.0.0/24. It runs in the soak's network namespace
// (soak-namespace.ts), so its bridge, iptables rules and published ports are the soak's alone, and
// its containers live under a cgroup parent of their own, by which close() finds any process of
// theirs that outlived the engine. The test image is loaded from the machine's engine.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CGROUP_ROOT = '/sys/fs/cgroup';

export interface SoakDockerd {
  /** DOCKER_HOST for Pier and the docker CLI: unix://<socket>. */
  host: string;
  start(): Promise<void>;
  /** Sends the signal and resolves once dockerd has exited (SIGKILL after 60 s). */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  running(): boolean;
  /** `docker -H <ours> …`, bounded. */
  docker(args: string[], timeoutMs?: number): Promise<string>;
  /** Loads an image from the machine's engine. */
  loadImage(tag: string): Promise<void>;
  /** Removes every container, stops dockerd, ends what is left of its containers by cgroup. */
  close(): Promise<void>;
}

export interface SoakDockerdOptions {
  dir: string;
  /** Called when dockerd exits without stop() having asked. */
  onUnexpectedExit(detail: string): void;
}

export function createSoakDockerd(options: SoakDockerdOptions): SoakDockerd {
  const { dir } = options;
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const cgroupParent = `pier-soak-${process.pid}`;
  let child: ChildProcess | null = null;
  let stopping = false;

  const docker = async (args: string[], timeoutMs = 60_000): Promise<string> =>
    (await run('docker', ['-H', host, ...args], { maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs, killSignal: 'SIGKILL' })).stdout;

  const running = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;

  const start = async (): Promise<void> => {
    if (running()) return;
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'daemon.json'), '{}\n');
    const log = await open(join(dir, 'dockerd.log'), 'a');
    const args = [
      '--config-file', join(dir, 'daemon.json'),
      '--data-root', join(dir, 'root'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'docker.pid'),
      '-H', host,
      '--storage-driver', 'vfs',
      '--bip', '198.18.0.1/24',
      '--default-address-pool', 'base=198.18.128.0/17,size=24',
      '--cgroup-parent', cgroupParent,
    ];
    // Its own session: a Ctrl-C at the terminal reaches the soak, which stops it in order.
    const c = spawn('dockerd', args, { stdio: ['ignore', log.fd, log.fd], detached: true });
    child = c;
    stopping = false;
    c.once('exit', (code, signal) => {
      void log.close();
      if (!stopping) options.onUnexpectedExit(`dockerd (pid ${c.pid}) exited by itself: code ${code}, signal ${signal}`);
    });
    for (let i = 0; i < 600; i++) {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`dockerd exited at start:\n${await tail(join(dir, 'dockerd.log'))}`);
      try {
        await docker(['version', '--format', '{{.Server.Version}}'], 10_000);
        return;
      } catch {
        await delay(100);
      }
    }
    throw new Error(`dockerd did not answer in 60 s:\n${await tail(join(dir, 'dockerd.log'))}`);
  };

  const stop = async (signal: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    const c = child;
    if (c === null || !running()) return;
    stopping = true;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  };

  return {
    host,
    start,
    stop,
    running,
    docker,
    async loadImage(tag) {
      await run('sh', ['-c', 'docker save "$1" | docker -H "$2" load', 'sh', tag, host], { timeout: 300_000 });
    },
    async close() {
      if (running()) {
        const ids = (await docker(['ps', '-aq'], 30_000).catch(() => '')).split('\n').filter(Boolean);
        for (let i = 0; i < ids.length; i += 20) await docker(['rm', '-f', ...ids.slice(i, i + 20)], 120_000).catch(() => '');
      }
      await stop('SIGTERM');
      await endContainerProcesses(cgroupParent);
    },
  };
}

/** SIGKILLs every process left in the soak's container cgroups, then removes the cgroups. */
export async function endContainerProcesses(parent: string): Promise<void> {
  // cgroup v1: one hierarchy per controller; v2: the parent sits at the root.
  const bases = [join(CGROUP_ROOT, parent), ...(await readdir(CGROUP_ROOT).catch(() => [] as string[])).map((c) => join(CGROUP_ROOT, c, parent))];
  for (let round = 0; round < 10; round++) {
    let left = 0;
    for (const base of bases) {
      for (const group of await readdir(base, { withFileTypes: true }).catch(() => [])) {
        if (!group.isDirectory()) continue;
        const procs = await readFile(join(base, group.name, 'cgroup.procs'), 'utf8').catch(() => '');
        for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
          left++;
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone meanwhile.
          }
        }
      }
    }
    if (left === 0) break;
    await delay(200);
  }
  for (const base of bases) {
    for (const group of await readdir(base, { withFileTypes: true }).catch(() => [])) {
      if (group.isDirectory()) await rmdir(join(base, group.name)).catch(() => undefined);
    }
    await rmdir(base).catch(() => undefined);
  }
}

async function tail(path: string): Promise<string> {
  return (await readFile(path, 'utf8').catch(() => '')).split('\n').slice(-30).join('\n');
}
