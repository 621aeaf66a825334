// A second Docker engine of the test's own, to stop and start at will (never the machine's
// engine): dockerd with its own data root, exec root, pidfile and unix socket in a temp folder,
// no bridge and no iptables rules, the vfs storage driver (no mounts left behind), and the
// containerd it starts itself. It runs in a network namespace of its own (`unshare --net`):
// dockerd started with --bridge=none deletes the interface named docker0, which in the host's
// namespace is the machine engine's bridge. The test image is loaded into it from the machine's
// engine. Stopped by PID (dockerd, then whatever of its containerd is left) and removed in t.after.
import type { TestContext } from 'node:test';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DockerEngine {
  /** Path of its API socket: DOCKER_HOST=unix://<socket>. */
  socket: string;
  host: string;
  /** SIGTERM to dockerd; resolves once it has exited (it stops its containers and containerd). */
  stop(): Promise<void>;
  /** Starts dockerd again on the same folders and waits until it answers. */
  start(): Promise<void>;
  /** `docker -H …` on this engine. */
  docker(args: string[]): Promise<string>;
}

/** Unmounts (lazily) whatever is still mounted below `dir`, deepest first. */
export async function unmountUnder(dir: string): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const p of points) await run('umount', ['-l', p]).catch(() => undefined);
}

export async function startDockerEngine(t: TestContext, options: { images?: string[] } = {}): Promise<DockerEngine> {
  // Short: a unix socket path has room for about 100 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'pier-dk-'));
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  let child: ChildProcess | null = null;

  const docker = async (args: string[]) => (await run('docker', ['-H', host, ...args], { maxBuffer: 64 * 1024 * 1024 })).stdout;

  const start = async (): Promise<void> => {
    const log = await open(join(dir, 'dockerd.log'), 'a');
    const args = [
      '--data-root', join(dir, 'root'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'docker.pid'),
      '-H', host,
      '--bridge=none',
      '--iptables=false',
      '--ip-masq=false',
      '--storage-driver', 'vfs',
    ];
    // unshare execs dockerd in the new namespace: the child's PID is dockerd's.
    const c = spawn('unshare', ['--net', 'dockerd', ...args], { stdio: ['ignore', log.fd, log.fd] });
    child = c;
    c.once('exit', () => void log.close());
    for (let i = 0; i < 300; i++) {
      if (c.exitCode !== null) throw new Error(`dockerd exited with ${c.exitCode}:\n${await readFile(join(dir, 'dockerd.log'), 'utf8')}`);
      try {
        await docker(['version', '--format', '{{.Server.Version}}']);
        return;
      } catch {
        await delay(100);
      }
    }
    throw new Error(`dockerd did not answer in 30 s:\n${await readFile(join(dir, 'dockerd.log'), 'utf8')}`);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  };

  t.after(async () => {
    await stop();
    // Its containerd normally ends with it; if not, end it by the PID it wrote.
    const pid = Number((await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    // A sandbox's network namespace dockerd did not unbind before it ended (in its exec root) makes
    // the removal fail with EBUSY: unmounted first.
    await unmountUnder(dir);
    // Said, not thrown: a hook that throws skips the hooks after it (a test's pier server, left
    // running on this engine's socket once its test process is gone).
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch((err: Error) => console.error(`test engine folder ${dir} not removed: ${err.message}`));
  });

  await start();
  for (const image of options.images ?? []) {
    await run('sh', ['-c', `docker save "$1" | docker -H "$2" load`, 'sh', image, host]);
  }
  return { socket, host, stop, start, docker };
}
