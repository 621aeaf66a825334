// A two-node Docker Swarm of the test's own, on this one machine (never the machine's engine):
// three network namespaces the test creates — one per node and one holding the bridge that joins
// them (a bridge on the host would be dropped by the host's FORWARD policy) — plus a veth leg from
// the host onto that bridge, so the test (and Pier, the edge) reach each node at its address.
// Every address is in 198.18.0.0/15: nodes at 198.18.N.1 and .2, the host's leg at .254, with N
// picked per cluster so concurrent test files do not meet. Each node runs its own dockerd (and the
// containerd it starts) under `nsenter --net` (not `ip netns exec`, which hides the cgroup mount),
// with its own folders and unix socket. Node 1 is the manager, node 2 a worker. The given images
// are loaded into both engines (docker save | docker load), so each node has the same image id.
// Cleanup (t.after) undoes only what it made: services, swarm, daemons by PID, namespaces, the leg.
import type { TestContext } from 'node:test';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { unmountUnder } from './docker-engine.js';

const run = promisify(execFile);

export interface SwarmNode {
  /** Swarm's node hostname is the machine's; tests tell nodes apart by address. */
  index: 1 | 2;
  address: string;
  /** The node's network namespace (/var/run/netns/NAME): a process started there runs "on" the node. */
  netns: string;
  /** DOCKER_HOST value for this node's engine. */
  host: string;
  socket: string;
  /** SIGTERM to this node's dockerd; resolves once it has exited (its tasks stop with it). */
  stop(): Promise<void>;
  /** Starts dockerd again on the same folders; it rejoins the swarm by itself. */
  start(): Promise<void>;
  docker(args: string[]): Promise<string>;
  /** The last `lines` lines of this node's dockerd log (for a failure's message). */
  engineLog(lines?: number): Promise<string>;
}

export interface SwarmCluster {
  manager: SwarmNode;
  worker: SwarmNode;
  nodes: SwarmNode[];
  /** The host's address on the nodes' bridge (what a task sees as the client's address). */
  hostAddress: string;
  subnet: string;
}

/**
 * Root, `ip` and `nsenter` are needed to make namespaces and start engines in them: in CI their
 * absence is a failure, elsewhere the test is skipped with the reason.
 */
export async function requireNamespaces(t: TestContext): Promise<boolean> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const tool of ['ip', 'nsenter', 'dockerd']) {
    if (!(await run('sh', ['-c', `command -v ${tool}`]).then(() => true, () => false))) missing.push(tool);
  }
  if (missing.length === 0) return true;
  const why = `a swarm of test engines needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(why);
  t.skip(why);
  return false;
}

/** Bounds every wait below; a node's dockerd on vfs needs a few seconds on a loaded machine. */
const ANSWER_TRIES = 600;

export interface SwarmClusterOptions {
  /** Loaded into both engines (docker save | docker load): the same image id on each node. */
  images?: string[];
  /**
   * The engines pull over plain HTTP from registries on the cluster's subnet (`--insecure-registry`):
   * a registry the test runs on the host's leg (test/support/plain-registry.ts).
   */
  insecureRegistry?: boolean;
}

export async function startSwarmCluster(t: TestContext, options: SwarmClusterOptions = {}): Promise<SwarmCluster> {
  const id = randomBytes(3).toString('hex');
  const third = randomInt(1, 255);
  const subnet = `198.18.${third}.0/24`;
  const prefix = `pier-sw-${id}`;
  const namespaces: string[] = [];
  const hostLeg = `psw${id}h`;
  let hostLegMade = false;
  const nodes: SwarmNode[] = [];
  const stops: (() => Promise<void>)[] = [];
  const dirs: string[] = [];

  t.after(async () => {
    // Services first, then the swarm, then the daemons, then the namespaces and the host's leg.
    const manager = nodes[0];
    if (manager) {
      const services = await manager.docker(['service', 'ls', '-q']).catch(() => '');
      for (const s of services.split('\n').filter(Boolean)) await manager.docker(['service', 'rm', s]).catch(() => undefined);
    }
    for (const node of [...nodes].reverse()) await node.docker(['swarm', 'leave', '--force']).catch(() => undefined);
    for (const stop of stops) await stop().catch(() => undefined);
    for (const dir of dirs) {
      const pid = Number((await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '')).trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Ended with its dockerd.
        }
      }
      // A network namespace still bound in the exec root would leave the folder (EBUSY) and a mount behind.
      await unmountUnder(dir);
      await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 }).catch(() => undefined);
    }
    for (const ns of namespaces) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    if (hostLegMade) await run('ip', ['link', 'del', hostLeg]).catch(() => undefined);
  });

  const ip = async (args: string[]) => void (await run('ip', args));

  // The bridge's namespace and the host's leg onto it.
  const bridgeNs = `${prefix}-br`;
  await ip(['netns', 'add', bridgeNs]);
  namespaces.push(bridgeNs);
  await ip(['-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', bridgeNs, 'link', 'set', 'br0', 'up']);
  await ip(['link', 'add', hostLeg, 'type', 'veth', 'peer', 'name', `psw${id}b`]);
  hostLegMade = true;
  await ip(['link', 'set', `psw${id}b`, 'netns', bridgeNs]);
  await ip(['-n', bridgeNs, 'link', 'set', `psw${id}b`, 'master', 'br0', 'up']);
  const hostAddress = `198.18.${third}.254`;
  await ip(['addr', 'add', `${hostAddress}/24`, 'dev', hostLeg]);
  await ip(['link', 'set', hostLeg, 'up']);

  for (const index of [1, 2] as const) {
    const ns = `${prefix}-n${index}`;
    await ip(['netns', 'add', ns]);
    namespaces.push(ns);
    const leg = `psw${id}n${index}`;
    await ip(['link', 'add', leg, 'type', 'veth', 'peer', 'name', `psw${id}p${index}`]);
    await ip(['link', 'set', leg, 'netns', ns]);
    await ip(['link', 'set', `psw${id}p${index}`, 'netns', bridgeNs]);
    await ip(['-n', bridgeNs, 'link', 'set', `psw${id}p${index}`, 'master', 'br0', 'up']);
    await ip(['-n', ns, 'link', 'set', leg, 'name', 'eth0']);
    await ip(['-n', ns, 'addr', 'add', `198.18.${third}.${index}/24`, 'dev', 'eth0']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    const node = await startNode(index, ns, `198.18.${third}.${index}`, dirs, stops, options.insecureRegistry ? subnet : null);
    nodes.push(node);
  }

  const [manager, worker] = nodes as [SwarmNode, SwarmNode];
  // Swarm's own overlays (ingress) would otherwise take 10.0.x; keep them in 198.19.128.0/20.
  await manager.docker(['swarm', 'init', '--advertise-addr', manager.address, '--listen-addr', `${manager.address}:2377`, '--default-addr-pool', '198.19.128.0/20']);
  const token = (await manager.docker(['swarm', 'join-token', '-q', 'worker'])).trim();
  await worker.docker(['swarm', 'join', '--token', token, '--advertise-addr', worker.address, '--listen-addr', `${worker.address}:2377`, `${manager.address}:2377`]);
  for (let i = 0; ; i++) {
    const ready = (await manager.docker(['node', 'ls', '--format', '{{.Status}}'])).split('\n').filter((s) => s === 'Ready').length;
    if (ready === 2) break;
    if (i >= 300) throw new Error('the worker did not become Ready in the swarm');
    await delay(100);
  }

  for (const image of options.images ?? []) {
    for (const node of nodes) await run('sh', ['-c', 'docker save "$1" | docker -H "$2" load', 'sh', image, node.host], { maxBuffer: 16 * 1024 * 1024 });
  }
  return { manager, worker, nodes, hostAddress, subnet };
}

async function startNode(index: 1 | 2, ns: string, address: string, dirs: string[], stops: (() => Promise<void>)[], insecureRegistry: string | null): Promise<SwarmNode> {
  // Short: a unix socket path has room for about 100 bytes.
  const dir = await mkdtemp(join(tmpdir(), `pier-sw${index}-`));
  dirs.push(dir);
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  let child: ChildProcess | null = null;
  const docker = async (args: string[]) => (await run('docker', ['-H', host, ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;

  const start = async (): Promise<void> => {
    const log = await open(join(dir, 'dockerd.log'), 'a');
    const args = [
      `--net=/var/run/netns/${ns}`,
      'dockerd',
      '--data-root', join(dir, 'root'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'docker.pid'),
      '-H', host,
      '--storage-driver', 'vfs',
      // Inside the node's own namespace; 198.19.0.0/16 is Pier's network on the host, so stay clear.
      '--bip', '198.19.240.1/24',
      '--default-address-pool', 'base=198.19.244.0/22,size=24',
      ...(insecureRegistry ? ['--insecure-registry', insecureRegistry] : []),
    ];
    // nsenter execs dockerd: the child's PID is dockerd's.
    const c = spawn('nsenter', args, { stdio: ['ignore', log.fd, log.fd] });
    child = c;
    c.once('exit', () => void log.close());
    for (let i = 0; i < ANSWER_TRIES; i++) {
      if (c.exitCode !== null) throw new Error(`dockerd of node ${index} exited with ${c.exitCode}:\n${await readFile(join(dir, 'dockerd.log'), 'utf8')}`);
      try {
        await docker(['version', '--format', '{{.Server.Version}}']);
        return;
      } catch {
        await delay(100);
      }
    }
    throw new Error(`dockerd of node ${index} did not answer in ${ANSWER_TRIES / 10} s:\n${await readFile(join(dir, 'dockerd.log'), 'utf8')}`);
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };

  stops.push(stop);
  await start();
  const engineLog = async (lines = 60): Promise<string> =>
    (await readFile(join(dir, 'dockerd.log'), 'utf8').catch((err: Error) => err.message)).split('\n').slice(-lines).join('\n');
  return { index, address, netns: ns, host, socket, stop, start, docker, engineLog };
}
