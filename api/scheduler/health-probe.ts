// One health probe of one instance: a TCP connect, an HTTP GET, or a command in the container.
// Each returns whether it passed and a one-line output that explains it.
import net from 'node:net';
import type { CheckSpec } from '../manifest.js';

export interface ProbeTarget {
  /** Where the container's check port is published, for tcp and http. */
  host: string | null;
  hostPort: number | null;
  containerId: string;
}

export interface ProbeResult {
  ok: boolean;
  output: string;
}

/** Runs a command in a container; provided by the runtime. */
export type ExecFn = (containerId: string, cmd: string[], timeoutMs: number) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

export async function probe(check: CheckSpec, target: ProbeTarget, exec: ExecFn): Promise<ProbeResult> {
  const name = describeCheck(check);
  try {
    switch (check.type) {
      case 'tcp':
        return await tcpProbe(name, target, check.timeout);
      case 'http':
        return await httpProbe(name, check, target);
      case 'exec': {
        const r = await exec(target.containerId, check.command ?? [], check.timeout);
        const out = (r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ').slice(0, 300);
        return { ok: r.exitCode === 0, output: `${name}: exit code ${r.exitCode}${out ? `: ${out}` : ''}` };
      }
    }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${check.timeout} ms` : (e.cause?.code ?? e.message);
    return { ok: false, output: `${name}: ${why}` };
  }
}

export function describeCheck(check: CheckSpec): string {
  if (check.type === 'http') return `check http :${check.port}${check.path}`;
  if (check.type === 'tcp') return `check tcp :${check.port}`;
  return `check exec ${JSON.stringify(check.command)}`;
}

function tcpProbe(name: string, target: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  if (!target.host || !target.hostPort) return Promise.resolve({ ok: false, output: `${name}: the port is not published` });
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host as string, port: target.hostPort as number });
    const done = (r: ProbeResult) => {
      socket.destroy();
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, output: `${name}: no connection within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ ok: true, output: `${name}: connected` }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, output: `${name}: ${err.code ?? err.message}` }));
  });
}

async function httpProbe(name: string, check: CheckSpec, target: ProbeTarget): Promise<ProbeResult> {
  if (!target.host || !target.hostPort) return { ok: false, output: `${name}: the port is not published` };
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const res = await fetch(`http://${host}:${target.hostPort}${check.path}`, { signal: AbortSignal.timeout(check.timeout), redirect: 'manual' });
  const body = (await res.text().catch(() => '')).trim().replace(/\s+/g, ' ').slice(0, 200);
  const ok = check.status !== undefined ? res.status === check.status : res.status >= 200 && res.status < 400;
  const expected = check.status !== undefined ? ` (expected ${check.status})` : '';
  return { ok, output: `${name}: HTTP ${res.status}${ok ? '' : expected}${body ? `: ${body}` : ''}` };
}
