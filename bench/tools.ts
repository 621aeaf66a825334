// The external programs the benchmarks drive (HAProxy, nginx, iperf3, sockperf, wrk, taskset),
// checked up front with a clear message, and /proc readings of a process tree (CPU time, RSS).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

export const run = promisify(execFile);

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const TOOLS = ['haproxy', 'nginx', 'iperf3', 'sockperf', 'wrk', 'taskset'] as const;

/** Throws a message naming what is missing and the apt-get line that installs it. */
export async function checkTools(): Promise<void> {
  const missing: string[] = [];
  for (const tool of TOOLS) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(tool);
    }
  }
  if (!existsSync(NGINX_STREAM_MODULE)) missing.push('libnginx-mod-stream');
  if (missing.length > 0) {
    const pkgs = missing.map((m) => (m === 'taskset' ? 'util-linux' : m));
    throw new Error(`missing benchmark tools: ${missing.join(', ')}\ninstall them with: apt-get install -y ${pkgs.join(' ')}`);
  }
}

export async function versions(): Promise<Record<string, string>> {
  const first = async (cmd: string, args: string[]): Promise<string> => {
    try {
      const { stdout, stderr } = await run(cmd, args);
      return `${stdout}${stderr}`.split('\n')[0]?.trim() ?? '';
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n')[0]?.trim() ?? 'unknown';
    }
  };
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpus: String((await first('nproc', [])) || '?'),
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown',
    kernel: await first('uname', ['-r']),
    node: process.version,
    haproxy: await first('haproxy', ['-v']),
    nginx: await first('nginx', ['-v']),
    iperf3: await first('iperf3', ['--version']),
    sockperf: await first('sockperf', ['--version']),
    wrk: await first('wrk', ['--version']),
  };
}

/** Spawns a long-running helper; its output is kept (bounded) for error messages. */
export function startDaemon(cmd: string, args: string[], options: { cpu?: string; env?: NodeJS.ProcessEnv } = {}): Daemon {
  const argv = options.cpu === undefined ? [cmd, ...args] : ['taskset', '-c', options.cpu, cmd, ...args];
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
  let output = '';
  const keep = (b: Buffer): void => {
    output = (output + b.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface Daemon {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/** The pid and every descendant (cluster workers, nginx workers). */
export function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // The process went away while we looked.
    }
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const child of parents.get(pid) ?? []) walk(child);
  };
  walk(root);
  return out;
}

/**
 * CPU time of the tree, in seconds: the scheduler's nanosecond count per thread
 * (/proc/PID/task/TID/schedstat), where /proc/PID/stat's utime + stime only has 10 ms ticks.
 */
export function cpuSeconds(pids: number[]): number {
  let ns = 0;
  for (const pid of pids) {
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // Gone (or a thread exited while we looked).
    }
  }
  return ns / 1e9;
}

/** Resident set size of the tree, in bytes. */
export function rssBytes(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {
      // Gone.
    }
  }
  return kb * 1024;
}
